// The field app (/field): attendance, registration, survey answers and case notes entered
// with or without a connection. What it shows comes from the JSON API while online and is
// kept in IndexedDB for this worker only (offline.js wipes it at logout, when another
// worker logs in, and after 12 hours without use). What it records goes to the queue.
(function () {
  "use strict";
  var Q = window.BladiQueue;
  var app = document.getElementById("field-app");
  if (!Q || !app || !Q.owner) return;
  document.querySelectorAll("[data-needs-js]").forEach(function (n) { n.hidden = true; });
  app.hidden = false;
  var lang = document.documentElement.lang || "ar";
  var formLang = null; // the shown survey's default_language (models.common.in_language's order)
  var status = app.querySelector("[data-status]");
  var data = { activities: [], surveys: [], cases: [], pending: [] };
  var editing = {};  // form kind -> uuid of the queued entry being fixed

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function list(value, key) {
    return Array.isArray(value) ? value : (value && (value[key] || value.items)) || [];
  }
  function label(value) {
    if (!value || typeof value === "string") return value || "";
    return value[lang] || (formLang && value[formLang]) || value.en ||
      value[Object.keys(value)[0]] || "";
  }
  function today() {
    var d = new Date();
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
  }
  function say(text) { status.textContent = text; }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) Q.needsLogin(true);
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      });
  }
  function options(select, items, blank) {
    var keep = select.value;
    select.innerHTML = "";
    if (blank !== undefined) select.appendChild(el("option", { value: "" }, blank));
    items.forEach(function (item) { select.appendChild(el("option", { value: item[0] }, item[1])); });
    if (keep) select.value = keep;
  }

  // --- What the phone knows ---------------------------------------------------------------
  function load() {
    var fresh = navigator.onLine === false ? Promise.reject(new Error("offline")) :
      Promise.all([getJSON("/api/v1/activities"), getJSON("/api/v1/surveys"),
                   getJSON("/api/v1/cases")]).then(function (r) {
        data.activities = list(r[0], "activities");
        data.surveys = list(r[1], "surveys");
        data.cases = list(r[2], "cases");
        return Promise.all([Q.cacheSet("activities", data.activities),
                            Q.cacheSet("surveys", data.surveys), Q.cacheSet("cases", data.cases)]);
      });
    return fresh.catch(function () {
      return Promise.all([Q.cacheGet("activities"), Q.cacheGet("surveys"), Q.cacheGet("cases")])
        .then(function (r) {
          data.activities = r[0] || []; data.surveys = r[1] || []; data.cases = r[2] || [];
          if (!r[0]) say(app.getAttribute("data-empty"));
        });
    }).then(function () { return Q.cacheGet("pending"); })
      .then(function (pending) { data.pending = pending || []; render(); });
  }

  function youthChoices() {
    var seen = {}, found = [];
    function add(id, text) { if (id && !seen[id]) { seen[id] = true; found.push([id, text]); } }
    data.activities.forEach(function (a) {
      (a.roster || []).forEach(function (y) { add(y.id, (y.name || "") + " · " + (y.code || "")); });
    });
    data.cases.forEach(function (c) {
      add(c.youth_id || c.youth, (c.youth_name || "") + " · " + (c.youth_code || ""));
    });
    data.pending.forEach(function (p) { add(p.id, p.name + " · +"); });
    return found;
  }

  function render() {
    options(app.querySelector("#att-activity"), data.activities.map(function (a) {
      return [a.id, a.name]; }), "—");
    options(app.querySelector("#reg-activity"), data.activities.map(function (a) {
      return [a.id, a.name]; }), "—");
    options(app.querySelector("#sv-version"), data.surveys.map(function (s) {
      return [s.id, label(s.title) + (s.number ? " · v" + s.number : "")]; }), "—");
    options(app.querySelector("#sv-youth"), youthChoices(), "—");
    options(app.querySelector("#nt-case"), data.cases.map(function (c) {
      return [c.id, (c.youth_name || "") + " · " + (c.youth_code || c.code || "")]; }), "—");
    var date = app.querySelector("#att-date");
    if (!date.value) date.value = today();
    renderRoster();
    renderQuestions();
    renderFollowUps();
    var people = app.querySelector("[data-youth]");
    people.innerHTML = "";
    youthChoices().forEach(function (pair) { people.appendChild(el("li", { dir: "auto" }, pair[1])); });
  }

  // --- Follow-ups due on the chosen case: "done" goes to the queue like any entry ---------
  function renderFollowUps() {
    var box = app.querySelector("[data-followups]");
    box.innerHTML = "";
    var id = app.querySelector("#nt-case").value;
    var chosen = data.cases.filter(function (c) { return c.id === id; })[0];
    ((chosen && chosen.follow_ups_due) || []).forEach(function (due) {
      var row = el("li", {}, box.getAttribute("data-label") + " " + due.due_date + " ");
      var done = el("button", { type: "button" }, box.getAttribute("data-done"));
      done.addEventListener("click", function () {
        Q.add("follow_up", { note: due.id, done_on: today() }).then(function () {
          say(app.getAttribute("data-saved"));
          row.remove();
        });
      });
      row.appendChild(done);
      box.appendChild(row);
    });
  }

  // --- Attendance ---------------------------------------------------------------------------
  function activity() {
    var id = app.querySelector("#att-activity").value;
    return data.activities.filter(function (a) { return a.id === id; })[0];
  }
  function renderRoster(marks) {
    var box = app.querySelector("[data-roster]");
    box.innerHTML = "";
    var chosen = activity();
    if (!chosen) return;
    var duration = app.querySelector("#att-duration");
    if (!duration.value && chosen.default_duration_minutes) duration.value = chosen.default_duration_minutes;
    (chosen.roster || []).forEach(function (youth, index) {
      var row = el("fieldset", { "class": "roster-row" });
      row.appendChild(el("legend", { dir: "auto" }, (youth.name || "") + " · " + (youth.code || "")));
      ["present", "absent"].forEach(function (status) {
        var id = "att-" + index + "-" + status;
        var input = el("input", { type: "radio", name: "y-" + youth.id, value: status, id: id });
        input.checked = (marks ? marks[youth.id] : "present") === status;
        var text = el("label", { "for": id, "class": "radio" });
        text.appendChild(input);
        text.appendChild(document.createTextNode(" " + box.getAttribute("data-" + status)));
        row.appendChild(text);
      });
      box.appendChild(row);
    });
  }

  // --- Survey -------------------------------------------------------------------------------
  // Skip rules offline: XLSForm's XPath read by openrosa-xpath-evaluator (Enketo's, bundled
  // in xpath.min.js, loaded before this file), over the instance the server builds, so the
  // phone and the server agree. Should that file be missing, or an expression unreadable,
  // the question shows: the server, which reads them all, decides on arrival.
  function relevant(expression, answers, names, current) {
    if (!expression || !window.BladiXPath) return true;
    return window.BladiXPath.relevant(expression, answers, { names: names, current: current });
  }
  function applyRelevance() {
    var chosen = version();
    if (!chosen || !chosen.definition) return;
    var form = app.querySelector('form[data-offline="survey_response"]');
    var names = (chosen.definition.questions || []).concat(chosen.definition.meta || [])
      .map(function (q) { return q.name; });
    var groups = {};
    (chosen.definition.groups || []).forEach(function (g) { groups[g.name] = g; });
    // A question hidden now empties the answers the next ones depend on: repeat until stable.
    for (var round = 0; round < 5; round++) {
      var answers = collectAnswers(form), changed = false, groupShown = {};
      (chosen.definition.questions || []).forEach(function (q) {
        var block = form.querySelector('[data-question="' + q.name + '"]');
        // A group shows or hides as a whole, as on the server (logic.py).
        if (q.group && !(q.group in groupShown)) {
          groupShown[q.group] = relevant((groups[q.group] || {}).relevant, answers, names);
        }
        var hide = (q.group && !groupShown[q.group]) || !relevant(q.relevant, answers, names, q.name);
        if (block && block.hidden !== hide) { block.hidden = hide; changed = true; }
      });
      if (!changed) break;
    }
  }

  function version() {
    var id = app.querySelector("#sv-version").value;
    return data.surveys.filter(function (s) { return String(s.id) === id; })[0];
  }
  function renderQuestions(answers) {
    var box = app.querySelector("[data-questions]");
    box.innerHTML = "";
    var chosen = version();
    if (!chosen || !chosen.definition) return;
    formLang = chosen.definition.default_language || null;
    (chosen.definition.questions || []).forEach(function (q) {
      var id = "q-" + q.name, kind = q.type, value = answers ? answers[q.name] : undefined;
      if (kind === "note") {
        box.appendChild(el("p", { "class": "hint", dir: "auto", "data-question": q.name }, label(q.label)));
        return;
      }
      if (["select_one", "select_multiple", "yes_no", "likert"].indexOf(kind) >= 0) {
        var group = el("fieldset", { "class": "field radios", "data-answer": q.name, "data-kind": kind,
                                     "data-question": q.name });
        group.appendChild(el("legend", { dir: "auto" }, label(q.label)));
        (q.choices || []).forEach(function (c, i) {
          var input = el("input", { type: kind === "select_multiple" ? "checkbox" : "radio",
                                    name: id, value: c.name, id: id + "-" + i });
          input.checked = Array.isArray(value) ? value.indexOf(c.name) >= 0 : value === c.name;
          var text = el("label", { "for": id + "-" + i, "class": "radio" });
          text.appendChild(input);
          text.appendChild(document.createTextNode(" " + label(c.label)));
          group.appendChild(text);
        });
        box.appendChild(group);
        return;
      }
      var wrap = el("div", { "class": "field", "data-answer": q.name, "data-kind": kind,
                             "data-question": q.name });
      wrap.appendChild(el("label", { "for": id, dir: "auto" }, label(q.label)));
      var type = kind === "integer" || kind === "decimal" ? "number" : (kind === "date" ? "date" : "text");
      var input = el("input", { id: id, name: id, type: type, dir: "auto" });
      if (kind === "decimal") input.setAttribute("step", "any");
      if (value !== undefined && value !== null) input.value = value;
      wrap.appendChild(input);
      box.appendChild(wrap);
    });
    applyRelevance();
  }
  function collectAnswers(form) {
    var answers = {};
    form.querySelectorAll("[data-answer]").forEach(function (block) {
      if (block.hidden) return;  // a skipped question keeps no answer
      var name = block.getAttribute("data-answer"), kind = block.getAttribute("data-kind");
      if (kind === "select_multiple") {
        var picked = Array.prototype.filter.call(block.querySelectorAll("input"), function (i) { return i.checked; })
          .map(function (i) { return i.value; });
        if (picked.length) answers[name] = picked;
      } else if (block.tagName === "FIELDSET") {
        var one = block.querySelector("input:checked");
        if (one) answers[name] = one.value;
      } else {
        var input = block.querySelector("input");
        if (input.value !== "") answers[name] = input.value;
      }
    });
    return answers;
  }

  // --- Saving into the queue ----------------------------------------------------------------
  function fail(form, text) {
    var box = form.querySelector("[data-error]");
    box.textContent = text; box.hidden = !text;
  }
  function save(kind, form, payload) {
    var id = editing[kind];
    var done = id ? Q.list().then(function (items) {
      var item = items.filter(function (i) { return i.uuid === id; })[0];
      if (!item) return Q.add(kind, payload);
      item.data = payload; item.state = "waiting"; item.reason = null; item.field_errors = null;
      item.tries = 0; item.next_try = 0;
      return Q.put(item).then(function () { Q.send(); return item; });
    }) : Q.add(kind, payload);
    delete editing[kind];
    return done.then(function (item) { say(form.closest("#field-app").getAttribute("data-saved")); return item; });
  }
  function required() { return app.getAttribute("data-required"); }

  app.addEventListener("submit", function (event) {
    var form = event.target, kind = form.getAttribute("data-offline");
    if (!kind) return;
    event.preventDefault();
    fail(form, "");
    if (kind === "session") {
      var chosen = activity(), day = form.querySelector("#att-date").value;
      if (!chosen || !day) { fail(form, required()); return; }
      var marks = {};
      (chosen.roster || []).forEach(function (youth) {
        var picked = form.querySelector('input[name="y-' + youth.id + '"]:checked');
        marks[youth.id] = picked ? picked.value : "absent";
      });
      var minutes = form.querySelector("#att-duration").value;
      save(kind, form, { activity: chosen.id, date: day,
                         duration_minutes: minutes ? Number(minutes) : null, attendance: marks });
    } else if (kind === "registration") {
      var fields = new FormData(form), values = {};
      fields.forEach(function (value, name) {
        if (name === "consent_scopes") { (values[name] = values[name] || []).push(value); }
        else if (name !== "csrf_token") values[name] = value;
      });
      values.confirmed_new = fields.get("confirmed_new") === "1";
      if (!values.first_name_ar && !values.first_name_latin) { fail(form, required()); return; }
      var name = [values.first_name_ar || values.first_name_latin, values.last_name_ar || values.last_name_latin].join(" ");
      if (!values.activity) delete values.activity;
      save(kind, form, values).then(function (item) {
        data.pending = data.pending.filter(function (p) { return p.id !== item.uuid; })
          .concat([{ id: item.uuid, name: name }]);
        Q.cacheSet("pending", data.pending);
        // Enrolled in an activity: on its roster at once, so today's attendance counts them
        // (the registration is sent before the session: the queue keeps the order).
        data.activities.forEach(function (a) {
          if (a.id === values.activity && !(a.roster || []).some(function (y) { return y.id === item.uuid; })) {
            a.roster = (a.roster || []).concat([{ id: item.uuid, code: "+", name: name }]);
          }
        });
        Q.cacheSet("activities", data.activities);
        renderRoster();
        options(app.querySelector("#sv-youth"), youthChoices(), "—");
        form.reset();
      });
    } else if (kind === "survey_response") {
      var chosenVersion = version();
      if (!chosenVersion) { fail(form, required()); return; }
      save(kind, form, { version: chosenVersion.id, youth: form.querySelector("#sv-youth").value || null,
                         wave: form.querySelector("#sv-wave").value || null,
                         answers: collectAnswers(form) }).then(function () { renderQuestions(); });
    } else if (kind === "case_note") {
      var text = form.querySelector("#nt-text").value.trim(), file = form.querySelector("#nt-case").value;
      if (!text || !file) { fail(form, required()); return; }
      save(kind, form, { "case": file, kind: form.querySelector("#nt-kind").value, text: text,
                         due_date: form.querySelector("#nt-due").value || null, confidential: false })
        .then(function () { form.reset(); });
    }
  });

  app.addEventListener("change", function (event) {
    if (event.target.id === "att-activity") { app.querySelector("#att-duration").value = ""; renderRoster(); }
    if (event.target.id === "sv-version") renderQuestions();
    if (event.target.id === "nt-case") renderFollowUps();
    if (event.target.closest && event.target.closest("[data-questions]")) applyRelevance();
  });
  app.addEventListener("click", function (event) {
    if (event.target.closest("[data-all-present]")) {
      app.querySelectorAll('[data-roster] input[value="present"]').forEach(function (r) { r.checked = true; });
    }
  });

  // --- The queue ----------------------------------------------------------------------------
  var queueList = app.querySelector("[data-queue]");
  var states = JSON.parse(queueList.getAttribute("data-states"));
  var types = JSON.parse(queueList.getAttribute("data-types"));

  function fix(item) {
    var form = app.querySelector('form[data-offline="' + item.type + '"]');
    if (!form) return;
    editing[item.type] = item.uuid;
    if (item.type === "session") {
      form.querySelector("#att-activity").value = item.data.activity;
      form.querySelector("#att-date").value = item.data.date;
      form.querySelector("#att-duration").value = item.data.duration_minutes || "";
      renderRoster(item.data.attendance);
    } else if (item.type === "survey_response") {
      form.querySelector("#sv-version").value = item.data.version;
      form.querySelector("#sv-youth").value = item.data.youth || "";
      form.querySelector("#sv-wave").value = item.data.wave || "";
      renderQuestions(item.data.answers);
    } else {
      var values = item.type === "case_note" ? { "case": item.data["case"], kind: item.data.kind,
        text: item.data.text, due_date: item.data.due_date } : item.data;
      Object.keys(values).forEach(function (name) {
        form.querySelectorAll('[name="' + name + '"]').forEach(function (input) {
          var value = values[name];
          if (input.type === "checkbox" || input.type === "radio") {
            input.checked = Array.isArray(value) ? value.indexOf(input.value) >= 0 :
              (value === true ? input.value === "1" : String(value) === input.value);
          } else if (value !== null && value !== undefined) input.value = value;
        });
      });
    }
    fail(form, item.reason || "");
    form.scrollIntoView();
  }

  function renderQueue(items) {
    queueList.innerHTML = "";
    app.querySelectorAll("[data-queue-count]").forEach(function (n) { n.textContent = items.length; });
    if (!items.length) { queueList.appendChild(el("li", { "class": "muted" }, queueList.getAttribute("data-empty"))); return; }
    items.forEach(function (item) {
      var row = el("li", { "data-item": item.uuid, "data-state": item.state });
      row.appendChild(el("strong", {}, types[item.type] || item.type));
      row.appendChild(document.createTextNode(" · " + new Date(item.created).toLocaleString(lang) + " · "));
      row.appendChild(el("span", { "class": item.state === "waiting" || item.state === "sending" ? "muted" : "flag" },
                         states[item.state] || item.state));
      if (item.reason) row.appendChild(el("p", { dir: "auto" }, item.reason));
      if (item.field_errors) {
        Object.keys(item.field_errors).forEach(function (name) {
          row.appendChild(el("p", { "class": "error", dir: "auto" }, name + ": " + [].concat(item.field_errors[name]).join(" ")));
        });
      }
      if (item.state === "conflict" || item.state === "rejected") {
        var actions = el("div", { "class": "actions" });
        var again = el("button", { type: "button" }, queueList.getAttribute("data-resend"));
        again.addEventListener("click", function () {
          item.state = "waiting"; item.tries = 0; item.next_try = 0;
          Q.put(item).then(Q.send);
        });
        var edit = el("button", { type: "button" }, queueList.getAttribute("data-edit"));
        edit.addEventListener("click", function () { fix(item); });
        var drop = el("button", { type: "button", "class": "danger" }, queueList.getAttribute("data-discard"));
        drop.addEventListener("click", function () {
          if (window.confirm(queueList.getAttribute("data-confirm-discard"))) Q.remove(item.uuid);
        });
        actions.appendChild(edit); actions.appendChild(again); actions.appendChild(drop);
        row.appendChild(actions);
      }
      queueList.appendChild(row);
    });
  }
  document.addEventListener("bladi:queue", function (event) { renderQueue(event.detail); });
  // The session ended: the queue stays, and the worker is asked to log in again to send it.
  var relogin = app.querySelector("[data-login-needed]");
  document.addEventListener("bladi:login", function (event) {
    relogin.hidden = !event.detail;
    if (event.detail) relogin.scrollIntoView();
  });
  relogin.hidden = !Q.loginNeeded;
  app.querySelector("[data-send-now]").addEventListener("click", function () {
    Q.list().then(function (items) {
      return Promise.all(items.filter(function (i) { return i.state === "waiting"; }).map(function (i) {
        i.next_try = 0; return Q.put(i);
      }));
    }).then(Q.send);
  });
  app.querySelector("[data-download]").addEventListener("click", function () { Q.download(); });
  app.querySelector("[data-upload]").addEventListener("change", function (event) {
    var input = event.target, file = input.files && input.files[0];
    if (!file) return;
    file.text().then(Q.upload).then(function (count) {
      say(input.getAttribute("data-added").replace("{n}", count));
    }, function () {
      say(input.getAttribute("data-bad"));
    }).then(function () { input.value = ""; });
  });

  Q.changed();
  load();
})();
