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
