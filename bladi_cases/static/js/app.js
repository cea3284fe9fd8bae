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

// Surveys: skip logic as answers change. The server evaluates the XLSForm expressions (the
// same code as without JavaScript) and answers which questions show.
(function () {
  var form = document.querySelector("form[data-survey]");
  if (!form || !window.fetch) return;
  var pending = null;
  function refresh() {
    var shown = [];
    fetch(form.getAttribute("data-visibility"), {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) { return response.ok ? response.json() : null; })
      .then(function (visible) {
        if (!visible) return;
        form.querySelectorAll("[data-question]").forEach(function (block) {
          var name = block.getAttribute("data-question");
          if (name in visible) block.hidden = !visible[name];
          if (!block.hidden) shown.push(name);
        });
        var field = form.querySelector('input[name="shown"]');
        if (field) field.value = shown.join(" ");
      });
  }
  form.addEventListener("change", function () {
    clearTimeout(pending);
    pending = setTimeout(refresh, 150);
  });
})();

// A background job's page: follow its progress from the small JSON status instead of the
// page reloading itself (what it does without JavaScript), and show the outcome once done.
(function () {
  var box = document.querySelector("[data-job]");
  if (!box || !window.fetch) return;
  var status = box.getAttribute("data-status");
  if (status !== "queued" && status !== "running") return;
  var bar = box.querySelector(".job-bar");
  var count = box.querySelector(".job-count");
  var label = box.querySelector(".job-status");
  function poll() {
    fetch(box.getAttribute("data-job"), {credentials: "same-origin",
                                          headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (!state) { setTimeout(poll, 3000); return; }
        if (state.status !== "queued" && state.status !== "running") {
          window.location.reload();
          return;
        }
        if (bar) { bar.value = state.percent; bar.textContent = state.percent + "%"; }
        if (label) label.textContent = state.status_label;
        if (count && state.total) {
          count.textContent = state.stage_label + ": " + state.done.toLocaleString() +
            " / " + state.total.toLocaleString();
        }
        setTimeout(poll, 700);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
