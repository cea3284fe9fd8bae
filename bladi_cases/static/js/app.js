// Progressive enhancement only: every page works without this file.
// Long form submissions (imports) show a progress note and cannot be sent twice.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.hasAttribute("data-progress")) return;
  var note = form.querySelector(".progress-note");
  if (note) note.hidden = false;
  form.querySelectorAll("button[type=submit]").forEach(function (button) {
    button.disabled = true;
  });
});

// Attendance: "All present" ticks every youth at once instead of reloading the page.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest(".all-present") : null;
  if (!button) return;
  var form = button.form;
  if (!form || !form.hasAttribute("data-attendance")) return;
  event.preventDefault();
  form.querySelectorAll('.roster input[type=radio][value="present"]').forEach(function (radio) {
    radio.checked = true;
  });
});
