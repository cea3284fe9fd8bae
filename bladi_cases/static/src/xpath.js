// Source of bladi_cases/static/js/xpath.min.js (`make assets` bundles it with esbuild; the
// built file is committed, and tests/test_xpath_bundle.py checks it matches this source).
//
// The field app's XPath: openrosa-xpath-evaluator, the evaluator Enketo uses, over the same
// instance the server builds (bladi_cases/services/surveys/logic.py): <data><name>text</name>
// ...</data>, a select_multiple as its choice names joined by spaces, and `${name}` read as
// `/data/name` outside string literals. Exposed as window.BladiXPath.
"use strict";

var openrosaXPath = require("openrosa-xpath-evaluator");

var REFERENCE = /\$\{([^}]*)\}/g;
var LITERAL = /('[^']*'|"[^"]*")/;
var engine = null;

// Made on first use: the field page loads this file deferred, and most visits never ask.
function evaluator() {
  return engine || (engine = openrosaXPath());
}

/** `${name}` -> `/data/name`, string literals left alone (as logic.py's to_xpath). */
function toXPath(expression) {
  return String(expression).split(LITERAL).map(function (part, i) {
    return i % 2 ? part : part.replace(REFERENCE, "/data/$1");
  }).join("");
}

/** An answer as instance text: lists joined by spaces, as ODK and the server do. */
function text(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) {
    return value.map(function (v) { return String(v).trim(); })
      .filter(function (v) { return v !== ""; }).join(" ");
  }
  return String(value).trim();
}

/** The instance document: one element per question (`names`, else the answers' keys). */
function instance(answers, names) {
  var doc = document.implementation.createDocument(null, "data", null);
  var seen = {};
  (names || []).concat(Object.keys(answers || {})).forEach(function (name) {
    if (seen[name]) return;
    seen[name] = true;
    var node = doc.createElement(name);
    node.textContent = text((answers || {})[name]);
    doc.documentElement.appendChild(node);
  });
  return doc;
}

// today() and now() read `new Date()`; the library offers no hook, so a fixed day (tests,
// or a form filled for another day) is given by swapping the global Date while evaluating.
function withClock(today, run) {
  if (!today) return run();
  var Real = Date;
  var fixed = /T/.test(today) ? new Real(today) : new Real(today + "T00:00:00");
  if (isNaN(fixed.getTime())) throw new Error("bad today: " + today);
  function Fake(a, b, c, d, e, f, g) {
    var n = arguments.length;
    if (!(this instanceof Fake)) return new Real(fixed.getTime()).toString();
    return n === 0 ? new Real(fixed.getTime()) : n === 1 ? new Real(a)
      : new Real(a, b, n > 2 ? c : 1, n > 3 ? d : 0, n > 4 ? e : 0, n > 5 ? f : 0, n > 6 ? g : 0);
  }
  Fake.prototype = Real.prototype;
  Fake.now = function () { return fixed.getTime(); };
  Fake.parse = Real.parse;
  Fake.UTC = Real.UTC;
  globalThis.Date = Fake;
  try {
    return run();
  } finally {
    globalThis.Date = Real;
  }
}

var ANY = 0, NUMBER = 1, STRING = 2, BOOLEAN = 3;

/**
 * The value of an XLSForm expression given the answers: a boolean, a number or a string
 * (a node-set gives its first node's text, a date its ISO text). Throws on an expression
 * the evaluator cannot read. options: today ("YYYY-MM-DD", or a full date-time), names (every
 * question of the form, so unanswered ones exist as empty elements, as on the server),
 * current (the question `.` stands for), type ("boolean", "number" or "string" to convert).
 */
function evaluate(expression, answers, options) {
  options = options || {};
  var doc = instance(answers, options.names);
  var context = (options.current && doc.documentElement.getElementsByTagName(options.current)[0])
    || doc;
  var wanted = { "boolean": BOOLEAN, number: NUMBER, string: STRING }[options.type] || ANY;
  return withClock(options.today, function () {
    var result = evaluator().evaluate(toXPath(expression), context, null, wanted, null);
    switch (result.resultType) {
      case BOOLEAN: return result.booleanValue;
      case NUMBER: return result.numberValue;
      case STRING: case ANY: return result.stringValue;
      default: {
        var first = result.iterateNext ? result.iterateNext() : result.snapshotItem(0);
        return first ? first.textContent : "";
      }
    }
  });
}

/** Whether a question with this `relevant` is shown; an empty expression shows it, and one
 * the evaluator cannot read shows it too: the server decides when the answers arrive. */
function relevant(expression, answers, options) {
  if (!expression) return true;
  try {
    return evaluate(expression, answers, Object.assign({}, options, { type: "boolean" }));
  } catch (error) {
    return true;
  }
}

globalThis.BladiXPath = { evaluate: evaluate, relevant: relevant, toXPath: toXPath };
