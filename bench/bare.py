"""The reference page of bench/load.py: a bare Flask app rendering a 25-item Jinja list,
served by the same gunicorn settings as the app, so each page's throughput reads as a share
of what Flask, Jinja and gunicorn cost alone on this machine in the same run.

The list is a template file (bench/templates/bare.html), loaded and compiled once per
process as Flask does for any app's templates. Until 1 December it was a string given to
`render_template_string`, which compiles it again on every request: 1.3 of the page's 1.7
ms in process, so the reference served a fraction of what a bare Flask page serves, and
every page's share read two to three times too high (README, "Eighth round").

Run alone: `.venv/bin/gunicorn --chdir bench bare:app`.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, render_template, render_template_string

app = Flask(__name__)

ITEMS = [{"id": n, "name": f"Item number {n}", "code": f"BA-{n:04d}"} for n in range(25)]


@app.get("/")
def page():
    """The 25-item list."""
    return render_template("bare.html", title="Bare page", items=ITEMS)


@app.get("/string")
def former():
    """The former reference (before 1 December): the same list from a string compiled on
    every request. Only for `bench/load.py --former-reference`, which prints a page's share
    of it beside the real one, so that the README's earlier rounds can be read against the
    new figures; never the goal's measure."""
    return render_template_string(FORMER, title="Bare page", items=ITEMS)


with open(Path(__file__).parent / "templates" / "bare.html", encoding="utf-8") as _page:
    FORMER = _page.read()
