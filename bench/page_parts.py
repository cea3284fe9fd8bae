"""Where a page's CPU goes: the pages of bench/load.py in process, as they are and with one
part taken away at a time, so that each part's cost is the difference.

Run: `.venv/bin/python bench/page_parts.py [--database URL] [--youth 20000] [--repeat 300]
[--only REGEX]`, on the database bench/load.py builds (built here when missing).

The parts:
- "no audit entry": a read page's audit entry is not written (`audit.after_render` made a
  no-op), so the page's second transaction on SQLite, or its INSERT on PostgreSQL, goes;
- "no disk sync" (SQLite; nothing changes on PostgreSQL): every commit with
  `synchronous=NORMAL` (what the app keeps for bookkeeping that may be lost in a machine
  crash), the entry still written;
- "identity gettext": the templates' translations replaced by the message itself.
And two pages the app does not have, added to it here: a JSON answer and a page of one
paragraph in `base.html`, both behind the same login and hooks: their difference is what
the HTML frame (header, menu, footer, CSRF token) costs.

CPU time of this process (`time.process_time`), not wall time: a commit's wait for the disk
counts only as the kernel's work for it. Measurement only: nothing here is used by the app.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import _build, _ensure_postgres_database, _pages  # noqa: E402

PARTS = ("as is", "no audit entry", "no disk sync", "identity gettext")


def _frame_pages(app) -> None:
    """A JSON answer and a one-paragraph page in base.html, for a field worker."""
    from flask import jsonify, render_template

    from bladi_cases.policy import Perm, requires

    paragraph = app.jinja_env.from_string(
        "{% extends 'base.html' %}{% block content %}<p>…</p>{% endblock %}")

    @requires(Perm.ACTIVITIES)
    def bench_json():
        return jsonify(ok=True)

    @requires(Perm.ACTIVITIES)
    def bench_html():
        return render_template(paragraph)

    app.add_url_rule("/bench-parts/json", "bench_parts_json", bench_json)
    app.add_url_rule("/bench-parts/html", "bench_parts_html", bench_html)


def _take_away(part: str, app):
    """Take `part` away; return how to put it back."""
    import bladi_cases
    from bladi_cases.services import audit

    if part == "no audit entry":
        kept = audit.after_render
        audit.after_render = lambda write, waits_for_disk=True: None
        return lambda: setattr(audit, "after_render", kept)
    if part == "no disk sync":
        kept = bladi_cases.waits_for_disk
        bladi_cases.waits_for_disk = lambda: False
        return lambda: setattr(bladi_cases, "waits_for_disk", kept)
    if part == "identity gettext":
        env = app.jinja_env
        kept = {name: env.globals[name] for name in
                ("gettext", "ngettext", "pgettext", "npgettext")}
        env.install_gettext_callables(
            gettext=lambda s: s, ngettext=lambda s, p, n: s if n == 1 else p,
            pgettext=lambda c, s: s, npgettext=lambda c, s, p, n: s if n == 1 else p,
            newstyle=True)
        return lambda: env.globals.update(kept)
    return lambda: None


def main() -> int:
    """Build or reuse the database, then print each page's CPU with each part taken away."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database")
    parser.add_argument("--youth", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--only", help="only the pages whose path matches this expression")
    args = parser.parse_args()
    url = args.database or f"sqlite:///{tempfile.gettempdir()}/bladi-bench-load-{args.youth}.db"
    if url.startswith("postgresql"):
        _ensure_postgres_database(url)
    records = _build(url, args.youth)

    from bladi_cases import create_app, freeze_startup_objects
    from tests.load_support import WORKER

    app = create_app({"WTF_CSRF_ENABLED": False})
    _frame_pages(app)
    freeze_startup_objects()
    client = app.test_client()
    if client.post("/login", data={"email": WORKER[0], "password": WORKER[1]}).status_code != 302:
        raise RuntimeError("the bench worker could not log in")
    pages = [("JSON answer (added here)", "/bench-parts/json"),
             ("one paragraph in base.html (added here)", "/bench-parts/html"),
             *_pages(records)]
    pages = [(label, path) for label, path in pages
             if not path.startswith("/static/") and (not args.only or re.search(args.only, path))]

    def cpu_ms(path: str) -> float:
        for _ in range(5):  # warm what a long-running worker has warm
            client.get(path)
        start = time.process_time()
        for _ in range(args.repeat):
            answer = client.get(path, headers={"Accept-Encoding": "gzip"})
            if answer.status_code != 200:
                raise RuntimeError(f"{path} answered {answer.status_code}")
        return (time.process_time() - start) * 1000 / args.repeat

    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"| {database}, {args.youth:,} youth, CPU ms per request ({args.repeat} each) | "
          + " | ".join(PARTS) + " |")
    print("|---|" + "---:|" * len(PARTS))
    for label, path in pages:
        cells = []
        for part in PARTS:
            put_back = _take_away(part, app)
            try:
                cells.append(f"{cpu_ms(path):.2f}")
            finally:
                put_back()
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("BLADI_ENV", "development")
    sys.exit(main())
