"""Measure the survey importer against the public corpus of XLSForms in tests/data/xlsforms/.

For each form written by others (see tests/data/xlsforms/SOURCES.csv), this asks two
questions: does pyxform (the converter ODK and KoboToolbox use) turn it into an XForm, and
does the app's importer (`bladi_cases.services.surveys.xlsform.parse_xlsform`) accept it? The
interesting number is how many of the pyxform-valid forms the app accepts; the refusals are
grouped by reason so that the importer's gaps can be counted.

Run: `.venv/bin/python tests/xlsform_corpus.py [--lang en|fr|ar] [--only GLOB] [--json FILE]`.
Prints a Markdown table, the refusal reasons and the totals
"pyxform-valid: N, accepted by the app: M". It only measures (exit status 0); the corpus test
will assert on `measure()`. The importer is called inside a request context of a throw-away
app, because its messages are translated.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import inspect
import json
import os
import re
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "data" / "xlsforms"
SOURCES = CORPUS / "SOURCES.csv"
FORM_SUFFIXES = (".xlsx", ".xls")


@dataclass
class Result:
    """What pyxform and the app made of one form."""

    file: str
    pyxform_ok: bool
    pyxform_message: str = ""
    app_ok: bool = False
    app_messages: list[str] = field(default_factory=list)


def forms(folder: Path = CORPUS, only: str = "*") -> list[Path]:
    """The corpus files, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix in FORM_SUFFIXES and fnmatch.fnmatch(p.name, only))


def read_sources(path: Path = SOURCES) -> list[dict[str, str]]:
    """The rows of SOURCES.csv (file, repository, path, release, package, licence, sha256)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def pyxform_check(path: Path) -> tuple[bool, str]:
    """Convert the form as pyxform's command line would (no ODK Validate, which needs Java)."""
    from pyxform.xls2xform import convert

    try:
        # A path, not bytes: pyxform then names a form without settings after its file.
        convert(xlsform=str(path), warnings=[], validate=False)
    except Exception as exc:  # pyxform raises PyXFormError, but also KeyError etc.
        return False, _first_line(exc)
    return True, ""


def app_check(path: Path) -> tuple[bool, list[str]]:
    """Run the app's importer on the file's bytes; any exception is a refusal, with its text.

    The importer is being rewritten: a parameter for the file name (pyxform's default form
    id), if it has one, is passed too.
    """
    from bladi_cases.services.surveys import xlsform

    kwargs = {}
    params = inspect.signature(xlsform.parse_xlsform).parameters
    for name in ("filename", "file_name", "name"):
        if name in params:
            kwargs[name] = path.name
            break
    try:
        xlsform.parse_xlsform(path.read_bytes(), **kwargs)
    except xlsform.XLSFormError as exc:
        return False, [str(m) for m in exc.messages] or [str(exc)]
    except Exception as exc:  # a crash is a refusal too, but say it was one
        return False, [f"CRASH {type(exc).__name__}: {_first_line(exc)}"]
    return True, []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def measure(folder: Path = CORPUS, only: str = "*", lang: str = "en") -> list[Result]:
    """Check every form of the corpus with pyxform and with the app's importer."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("BLADI_INSTANCE_PATH", tempfile.mkdtemp(prefix="bladi-corpus-"))
    from bladi_cases import create_app

    app = create_app({"BLADI_ENV": "testing", "TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": "sqlite://", "WTF_CSRF_ENABLED": False})
    results = []
    for path in forms(folder, only):
        ok, message = pyxform_check(path)
        with app.test_request_context(headers={"Accept-Language": lang}):
            app_ok, app_messages = app_check(path)
        results.append(Result(path.name, ok, message, app_ok, app_messages))
    return results


_WHERE = re.compile(r"^\s*(\w+ sheet)?[^:]*?\brow \d+\s*[:,]\s*|^\s*\w+ sheet\s*:\s*", re.I)
_PYXFORM_ROW = re.compile(r"\[row\s*:\s*\d+\]\s*")


def reason(message: str) -> str:
    """A message with its place and names taken out, so that like refusals group together."""
    text = _PYXFORM_ROW.sub("", _WHERE.sub("", message, count=1))
    text = re.sub(r"\$\{[^}]*\}", "${…}", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"|«[^»]*»|“[^”]*”", "'…'", text)
    text = re.sub(r"\bcolumn [A-Z]{1,3}\b", "column X", text)
    text = re.sub(r"\d+", "N", text)
    return text.strip()[:110]


def reasons(results: list[Result], scope: str = "valid") -> Counter:
    """How many refused forms give each reason (a form counts once per reason).

    scope "valid" counts only the forms pyxform converts, "all" every refused form.
    """
    counts: Counter = Counter()
    for r in results:
        if r.app_ok or (scope == "valid" and not r.pyxform_ok):
            continue
        counts.update({reason(m) for m in r.app_messages})
    return counts


def _cell(text: str, width: int = 90) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def report(results: list[Result]) -> str:
    """The Markdown table, the refusal reasons and the totals."""
    lines = ["| form | pyxform | app | first message |", "| --- | --- | --- | --- |"]
    for r in results:
        first = r.app_messages[0] if r.app_messages else r.pyxform_message
        lines.append(f"| {r.file} | {'ok' if r.pyxform_ok else 'refused'} | "
                     f"{'accepted' if r.app_ok else 'refused'} | {_cell(first)} |")
    valid = [r for r in results if r.pyxform_ok]
    by_format = Counter(Path(r.file).suffix for r in valid if r.app_ok)
    lines += ["", "Refusals of pyxform-valid forms, by reason (forms giving it):", ""]
    lines += [f"- {n} × {_cell(text, 110)}" for text, n in reasons(results).most_common()]
    lines += ["", f"forms: {len(results)} "
              f"({sum(r.file.endswith('.xlsx') for r in results)} .xlsx, "
              f"{sum(r.file.endswith('.xls') for r in results)} .xls)",
              f"pyxform-valid: {len(valid)} "
              f"({sum(r.file.endswith('.xlsx') for r in valid)} .xlsx), "
              f"accepted by the app: {sum(r.app_ok for r in valid)} "
              f"({by_format['.xlsx']} .xlsx)",
              f"accepted by the app although pyxform refuses them: "
              f"{sum(r.app_ok and not r.pyxform_ok for r in results)}"]
    return "\n".join(lines)


def main() -> int:
    """Measure the corpus and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=CORPUS)
    parser.add_argument("--only", default="*", help="a glob on the file names")
    parser.add_argument("--lang", default="en", help="the language of the app's messages")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args()
    results = measure(args.folder, args.only, args.lang)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], ensure_ascii=False,
                                        indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
