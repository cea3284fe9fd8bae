"""Corpus forms filled by script, the app's decisions set beside the XForm's (issue 17, item 7).

For each scripted form of tests/data/xlsforms/ and each answer set, the app decides through
the calls the fill page makes (services/surveys/logic.py: `visible`, `choices_for`,
`effective`, `validate`) which questions are shown, which choices are offered, what each
calculation gives and which answers are refused. The reference is not the app's code:
pyxform converts the form to an XForm, and its <bind> elements (relevant, calculate,
constraint, required, type) and <itemset> filters are evaluated by openrosa-xpath-evaluator
(Enketo's evaluator) in headless Chromium, one browser for the whole module.

The answer sets are what a worker could enter: questions the form hides are left empty (ODK
and the app then agree by construction on what a hidden answer means).

The runner (tests/xpath_browser.py) builds a flat instance <data><name/>…</data>, so the
XForm's absolute paths are read by their last step (names are unique in these forms; the test
checks it) and an itemset's filter has the item's own columns written in as literals. A
repeat's entry is evaluated with its own answers beside the form's (`../name` and
`/data/repeat/name` read that entry), which is right for expressions that stay inside their
entry, as the scripted repeat's do; position(), count() or sum() over entries would need the
real nested instance.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import pytest

from bladi_cases.services.surveys import logic, xlsform

from . import browser_support
from .browser_support import require_browser
from .xlsform_corpus import CORPUS
from .xpath_browser import _RUN, BUNDLE, ERROR, _answer_text, _result

browser = browser_support.browser

pytestmark = pytest.mark.browser
require_browser()

XF = "{http://www.w3.org/2002/xforms}"

# form -> answer sets (question name -> answer; a list for select_multiple). Hidden questions
# are left out. The forms the app accepts that hold any skip logic, calculation or filter
# come first; then forms whose only rules are their types, choice lists and required-ness.
SCRIPTS: dict[str, list[dict]] = {
    "pyxform__bug_xl_date_ambiguous_v1.xlsx": [
        {}, {"name1": "Amal", "names": "name1"}, {"names": "name3", "current_date": "2026-11-30"},
    ],
    "pyxform__group.xls": [
        {}, {"phone_number": "98765432", "age": "52"}, {"phone_number": "98-765"},
    ],
    "pyxform__or_other.xlsx": [
        {}, {"fav_color": "other"}, {"fav_color": "other", "fav_color_other": "teal"},
    ],
    "pyxform__specify_other.xls": [
        {}, {"sex": "male"}, {"sex": "other"}, {"sex": "other", "sex_other": "non-binary"},
    ],
    "pyxform__bug_odkvalidatewarnings.xlsx": [
        {}, {"phone_number": "71234567"}, {"phone_number": "+216 71"},
        {"family_name": "Ben Ali", "phone_number": "abc", "age": "30"},
    ],
    "pyxform__bug_badly_named_choices_sheet.xls": [
        {"age": "17"}, {"age": "18", "name": "Amal", "color": "red"}, {"age": "40"},
        {}, {"age": "seventeen"}, {"age": "20", "color": "no-such-colour"},
    ],
    "pyxform__calculate.xls": [{}],
    "pyxform__cascading_select_test_equivalent.xls": [
        {},
        {"mylga_zone": "zone_1"},
        {"mylga_zone": "zone_1", "mylga_state_in_zone_1": "state_1"},
        {"mylga_zone": "zone_1", "mylga_state_in_zone_1": "state_2",
         "mylga_lga_in_state_2": "lga_3"},
        {"mylga_zone": "zone_2", "mylga_state_in_zone_2": "state_4",
         "mylga_lga_in_state_4": "lga_8"},
        {"mylga_zone": "zone_2", "mylga_state_in_zone_2": "state_1"},  # not in zone 2
    ],
    "pyxform__choice_filter_test.xlsx": [
        {}, {"state": "texas"}, {"state": "texas", "county": "dallas"},
        {"state": "washington", "county": "king", "city": "seattle"},
        {"state": "texas", "county": "king"},  # a county of another state
    ],
    "pyxform__new_cascading_select.xls": [
        {}, {"state": "texas"}, {"state": "texas", "county": "dallas", "city": "dumont"},
        {"state": "washington", "county": "king", "city": "seattle"},
        {"state": "washington", "county": "dallas"},
    ],
    "pyxform__text_and_integer.xls": [
        {}, {"your_name": "Sami", "your_age": "31"}, {"your_age": "31.5"},
        {"your_age": "-4"}, {"your_age": "thirty"},
    ],
    "pyxform__style_settings.xls": [{"your_name": "Rim", "your_age": "22"}, {"your_age": "x"}],
    "pyxform__bug_blank_second_row.xls": [{"value": "3"}, {"value": "3.5"}, {}],
    "pyxform__yes_or_no_question.xls": [{"good_day": "yes"}, {"good_day": "perhaps"}, {}],
    "pyxform__bug_ict_survey_fails.xls": [{"internet_teach": "yes"}, {"internet_teach": "x"}],
    "pyxform__choice_name_same_as_select_name.xls": [{}],
    "pyxform__instance_xmlns_test.xls": [{"yes_or_no": "no"}, {"yes_or_no": "both"}],
    "pyxform__bug_default_time_demo.xls": [{"start_time": "09:30"}, {"start_time": "9h30"}],
    "pyxform__allow_comment_rows_test.xls": [{"farmer_name": "Hedi"}, {}],
    "pyxform__extra_sheet_names.xlsx": [{"test": "x"}],
    "pyxform__hidden.xls": [{}],
    "pyxform__survey_no_name.xlsx": [{"state": "Sfax"}],
    # A repeat (household members); its expressions read the same entry (`../name`).
    "pyxform__tutorial.xls": [
        {},
        {"member": [{"name": "Amal", "sex": "female", "older_than_five": "yes",
                     "age_in_years": "30", "literate": "yes", "pregnant": "no"},
                    {"name": "Sami", "sex": "male", "older_than_five": "no",
                     "age_in_months": "14"}]},
        {"member": [{"sex": "female", "older_than_five": "yes", "age_in_years": "50"},
                    {"older_than_five": "no", "age_in_months": "80"},
                    {"older_than_five": "yes", "age_in_years": "3"},
                    {"sex": "female", "older_than_five": "yes", "age_in_years": "15",
                     "literate": "maybe"}]},
        {"member": [{"relationship_to_household_head": "cousin", "resident": "yes",
                     "stayed_last_night": "no"}]},
    ],
}

# Forms with `begin loop`: in pyxform's XForm the loop's questions keep their names in
# every choice's group (told apart by path), while the app names them `<choice>_<name>`,
# so this name-to-name comparison cannot read them; their expansion is checked against
# pyxform's XForm in tests/test_surveys_xlsform.py (test_a_loop_*).
LOOPS = {"pyxform__another_loop.xls", "pyxform__loop.xls", "pyxform__simple_loop.xls"}

_TYPES = {  # what an XForm type accepts as a typed answer (XML Schema lexical forms)
    "int": re.compile(r"[-+]?[0-9]+"),
    "decimal": re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"),
    "date": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
    "time": re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?.*"),
}
_LITERAL = re.compile(r"""('[^']*'|"[^"]*")""")


@dataclass
class XForm:
    """What pyxform's XForm says, by question name."""

    names: list[str]
    binds: dict[str, dict[str, str]]
    ancestors: dict[str, list[str]]
    repeat_of: dict[str, str] = field(default_factory=dict)  # question -> its repeat
    items: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # select -> items
    filters: dict[str, str] = field(default_factory=dict)  # select -> itemset predicate


def _flat(expression: str, root: str) -> str:
    """`/root/group/name` and, inside a repeat, `../name` -> `/data/name`, outside string
    literals (an entry is evaluated with its own answers beside the form's)."""
    path = re.compile(rf"/{re.escape(root)}(?:/[\w.-]+)*/([\w.-]+)")
    sibling = re.compile(r"(?<![\w/.])\.\./([\w.-]+)")
    return "".join(part if i % 2 else sibling.sub(r"/data/\1", path.sub(r"/data/\1", part))
                   for i, part in enumerate(_LITERAL.split(expression)))


def _local(tag: str) -> str:
    """An element's name without its namespace (instance_xmlns sets its own)."""
    return tag.rsplit("}", 1)[-1]


def read_xform(name: str) -> XForm:
    """Convert the corpus form with pyxform and read its instance, binds and itemsets."""
    from pyxform.xls2xform import convert

    text = convert(xlsform=str(CORPUS / name), warnings=[], validate=False).xform
    doc = ET.fromstring(text)
    model = doc.find(f".//{XF}model")
    instances = model.findall(f"{XF}instance")
    primary = list(instances[0])[0]
    root = _local(primary.tag)
    names, ancestors, paths, repeat_of, seen = [], {}, {}, {}, set()

    def walk(node, trail, repeat=None):
        for child in node:
            tag = _local(child.tag)
            path = f"{trail}/{tag}"
            if tag == "meta" or path in seen:
                continue  # a repeat's jr:template and its first entry: read once
            seen.add(path)
            if any(k.endswith("template") for k in child.attrib):
                walk(child, path, tag)
            elif len(child):
                walk(child, path, repeat)
            else:
                if repeat:
                    repeat_of[tag] = repeat
                names.append(tag)
                paths[path] = tag
                parts = path.strip("/").split("/")[1:-1]
                ancestors[tag] = ["/" + "/".join([root, *parts[:i + 1]])
                                  for i in range(len(parts))]

    walk(primary, f"/{root}")
    assert len(names) == len(set(names)), f"{name}: a name is used twice"
    binds = {}
    for bind in model.findall(f"{XF}bind"):
        attrs = {k.split("}")[-1]: v for k, v in bind.attrib.items()}
        node = attrs.pop("nodeset")
        key = paths.get(node, node)  # a group keeps its path
        binds[key] = {k: _flat(v, root) if k in ("relevant", "calculate", "constraint",
                                                 "required") else v
                      for k, v in attrs.items()}
    secondary = {i.get("id"): [{c.tag.removeprefix(XF): (c.text or "") for c in item}
                               for item in i.iter(f"{XF}item")]
                 for i in instances[1:] if i.get("id")}
    form = XForm(names, binds, {n: [paths.get(a, a) for a in ancestors[n]] for n in names},
                 repeat_of)
    for control in doc.iter():
        if control.tag not in (f"{XF}select1", f"{XF}select"):
            continue
        question = paths[control.get("ref")]
        itemset = control.find(f"{XF}itemset")
        if itemset is not None:
            match = re.fullmatch(r"instance\('([^']+)'\)/root/item(?:\[(.*)\])?",
                                 itemset.get("nodeset"), re.S)
            form.items[question] = secondary[match.group(1)]
            if match.group(2):
                form.filters[question] = _flat(match.group(2), root)
        else:
            form.items[question] = [{"name": v.text or ""}
                                    for v in control.iter(f"{XF}value")]
    return form


class Evaluator:
    """openrosa-xpath-evaluator in one page of the module's Chromium, with
    tests/xpath_browser.py's bundle and runner, for the module's many batches."""

    def __init__(self, chromium):
        self._page = chromium.new_page(timezone_id="UTC")
        self._page.set_content("<!doctype html><title>xpath</title>")
        self._page.add_script_tag(content=BUNDLE.read_text(encoding="utf-8"))

    def values(self, cases: list[dict]) -> list:
        """Each case's value ({"expr", "answers", "names"?, "current"?}); the evaluator must
        not throw on any (an XForm pyxform wrote is valid XPath)."""
        payload = [{"expr": c["expr"], "today": None, "names": c.get("names"),
                    "current": c.get("current"),
                    "answers": {k: _answer_text(v) for k, v in c["answers"].items()}}
                   for c in cases]
        raw = self._page.evaluate(_RUN, json.loads(json.dumps(payload)))
        results = [_result(r) for r in raw]
        for case, result in zip(cases, results, strict=True):
            assert not (isinstance(result, dict) and ERROR in result), (case, result)
        return results

    def close(self):
        self._page.close()


@pytest.fixture(scope="module")
def evaluator(browser):
    running = Evaluator(browser)
    yield running
    running.close()


def _truth(value) -> bool:
    if isinstance(value, str) and value in ("NaN",):
        return False
    return bool(value)


def _text(value) -> str:
    """A calculation's value as instance text (XPath string())."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if math.isnan(value):
            return ""
        return str(int(value)) if float(value).is_integer() else repr(value)
    return "" if value == "NaN" else str(value)


def _with_columns(predicate: str, item: dict[str, str]) -> str:
    """An itemset filter with the item's own columns (`state`, `cf`) as string literals."""
    def literal(match):
        word = match.group(0)
        return "'" + item[word] + "'" if word in item else word
    return "".join(part if i % 2 else re.sub(r"(?<![\w/$@:.-])[A-Za-z_][\w.-]*(?![\w(:-])",
                                             literal, part)
                   for i, part in enumerate(_LITERAL.split(predicate)))


def reference(form: XForm, answers: dict, evaluator: Evaluator) -> dict:
    """What the XForm says for these answers: shown questions, calculated values, offered
    choices and refused answers, by question (a repeat's as "repeat/number/name")."""
    top = [n for n in form.names if n not in form.repeat_of]
    scopes = [("", top, {n: answers.get(n, "") for n in form.names})]
    for repeat in dict.fromkeys(form.repeat_of.values()):
        inside = [n for n in form.names if form.repeat_of.get(n) == repeat]
        for number, entry in enumerate(answers.get(repeat) or [], start=1):
            scopes.append((f"{repeat}/{number}/", inside,
                           {**{n: answers.get(n, "") for n in top},
                            **{n: entry.get(n, "") for n in inside}}))
    result = {"shown": {}, "calculated": {}, "offered": {}, "refused": set()}
    for prefix, own, values in scopes:
        mine = _reference_scope(form, own, dict(values), evaluator)
        for part, found in mine.items():
            if part == "refused":
                result[part] |= {prefix + n for n in found}
            else:
                result[part].update({prefix + n: v for n, v in found.items()})
    return result


def _reference_scope(form: XForm, own: list[str], values: dict, evaluator: Evaluator) -> dict:
    """`reference` for the questions `own`, the instance being `values` (flat)."""
    names = list(values)
    calcs = [n for n in own if form.binds.get(n, {}).get("calculate")]
    for n in calcs:
        values[n] = ""
    for _round in range(len(calcs) + 1):  # until the calculations settle
        if not calcs:
            break
        got = evaluator.values([{"expr": form.binds[n]["calculate"], "answers": values,
                                 "names": names, "current": n} for n in calcs])
        new = {n: _text(v) for n, v in zip(calcs, got, strict=True)}
        if all(values[n] == new[n] for n in calcs):
            break
        values.update(new)
    wanted = set(own) | {a for n in own for a in form.ancestors[n]}
    relevants = [(n, b["relevant"]) for n, b in form.binds.items()
                 if b.get("relevant") and n in wanted]
    got = evaluator.values([{"expr": e, "answers": values, "names": names,
                             "current": n if n in names else None} for n, e in relevants])
    relevant = {n: _truth(v) for (n, _e), v in zip(relevants, got, strict=True)}
    shown = {n: relevant.get(n, True) and all(relevant.get(a, True) for a in form.ancestors[n])
             for n in own}
    offered = {}
    for question in own:
        items, predicate = form.items.get(question), form.filters.get(question)
        if items is None:
            continue
        if predicate:
            got = evaluator.values([{"expr": _with_columns(predicate, item), "answers": values,
                                     "names": names} for item in items])
            offered[question] = [i["name"] for i, ok in zip(items, got, strict=True)
                                 if _truth(ok)]
        else:
            offered[question] = [i["name"] for i in items]
    checks = [(n, key, form.binds[n][key]) for n in own if shown[n]
              for key in ("constraint", "required") if form.binds.get(n, {}).get(key)]
    got = evaluator.values([{"expr": e, "answers": values, "names": names, "current": n}
                            for n, _k, e in checks])
    truth = {(n, k): _truth(v) for (n, k, _e), v in zip(checks, got, strict=True)}
    refused = set()
    for n in own:
        bind = form.binds.get(n, {})
        text = values[n] if not isinstance(values[n], list) else " ".join(values[n])
        if not shown[n] or bind.get("calculate") or bind.get("readonly") == "true()":
            continue
        if not text:
            if truth.get((n, "required")):
                refused.add(n)
            continue
        pattern = _TYPES.get(bind.get("type", ""))
        if pattern and not pattern.fullmatch(text) or n in offered and not \
                set(text.split()) <= set(offered[n]) or truth.get((n, "constraint")) is False:
            refused.add(n)
    return {"shown": shown, "calculated": {n: values[n] for n in calcs},
            "offered": {n: offered[n] for n in own if n in form.filters}, "refused": refused}


def app_decisions(definition: dict, answers: dict) -> dict:
    """What the fill page decides (services/surveys/logic.py), in the same shape."""
    repeats = {g["name"] for g in definition.get("groups", []) if g.get("repeat")}
    shown = logic.visible(definition, answers)
    values = logic.effective(definition, answers)
    offered = logic.choices_for(definition, answers)
    errors = logic.validate(definition, answers)
    calculated = {}
    for q in definition["questions"]:
        if not logic.computed(q):
            continue
        if q.get("repeat"):
            for number, entry in enumerate(values.get(q["repeat"]) or [], start=1):
                calculated[f"{q['repeat']}/{number}/{q['name']}"] = logic._text(
                    entry.get(q["name"]))
        else:
            calculated[q["name"]] = logic._text(values.get(q["name"]))
    return {"shown": {n: v for n, v in shown.items() if n not in repeats},
            "calculated": calculated,
            "offered": {n: [str(c["name"]) for c in cs] for n, cs in offered.items()},
            "refused": set(errors)}


def test_at_least_ten_forms_are_scripted():
    assert len(SCRIPTS) >= 10


def test_every_accepted_form_with_rules_is_scripted(app):
    """When a feature lands and a form with skip logic, constraints or calculations is
    accepted, it gets answer sets here."""
    from .test_surveys_corpus import _pyxform_valid, import_refusals

    with_rules = []
    for name in _pyxform_valid():
        if name in LOOPS:
            continue
        form = read_xform(name) if not import_refusals(app, CORPUS / name) else None
        if form and (form.filters or any(
                b.get(k) for b in form.binds.values()
                for k in ("relevant", "constraint", "calculate", "required"))):
            with_rules.append(name)
    assert len(with_rules) >= 5
    assert set(with_rules) - set(SCRIPTS) == set()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_the_app_decides_as_the_xform_says(app, evaluator, name):
    form = read_xform(name)
    with app.test_request_context():
        definition = xlsform.parse_xlsform((CORPUS / name).read_bytes(), name)
        for answers in SCRIPTS[name]:
            assert set(answers) <= set(form.names) | set(form.repeat_of.values()), answers
            mine = app_decisions(definition, answers)
            theirs = reference(form, answers, evaluator)
            # Questions the app keeps (all but notes, which hold no answer, are in both).
            theirs["shown"] = {n: v for n, v in theirs["shown"].items() if n in mine["shown"]}
            assert mine == theirs, f"{name} with {answers}"
