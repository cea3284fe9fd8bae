"""Malicious uploads: how long each import takes to refuse each bomb of tests/bombs.py, and
how much memory it needs, each in a fresh process: the time of one call, the peak RSS of
the process (getrusage; the app alone is ~172 MB), and what the call itself allocates at
its peak (tracemalloc, on a second call). Run: `.venv/bin/python bench/bombs.py`.

Before the bounds (services/inputs.py), the 1 KB "corner" file drove the beneficiary import
past 3 GB in 90 s and hung the survey import for 122 s; the 400 MB shared string used
1.6 GB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BOMBS = ["corner", "corner, no dimension", "corner, lying dimension", "row number",
         "hidden references", "shared string", "text", "ratio", "wide", "10,000 real rows"]
IMPORTS = ["beneficiaries", "survey"]


def _real_rows() -> bytes:
    """Not a bomb: the largest ordinary import, 10,000 rows of the template's 23 columns
    (accepted by the bounds; the beneficiary import then refuses its made-up values)."""
    import io
    import random
    import string

    import openpyxl

    from bladi_cases.services.beneficiaries.imports import COLUMNS

    randomness = random.Random(1)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([key for key, _label in COLUMNS])
    for _ in range(10_000):
        sheet.append(["".join(randomness.choices(string.ascii_letters, k=8))
                      for _column in COLUMNS])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _build(name: str) -> bytes:
    from tests import bombs

    if name == "10,000 real rows":
        return _real_rows()
    return {
        "corner": bombs.corner_bomb, "corner, no dimension": lambda: bombs.corner_bomb(None),
        "corner, lying dimension": lambda: bombs.corner_bomb("A1:B2"),
        "row number": bombs.row_number_bomb, "hidden references": bombs.hidden_reference_bomb,
        "shared string": bombs.shared_string_bomb,
        "text": bombs.text_heavy_workbook, "ratio": bombs.ratio_bomb,
        "wide": lambda: bombs.wide_workbook("XFD"),
    }[name]()


def _measure(path: str, kind: str) -> dict:
    """In this (fresh) process: refuse the file once; seconds, RSS growth, the message."""
    os.environ.setdefault("BLADI_ENV", "testing")
    os.environ.setdefault("BLADI_INSTANCE_PATH", tempfile.mkdtemp())
    from bladi_cases import create_app
    from bladi_cases.services.beneficiaries import imports as importer
    from bladi_cases.services.surveys.xlsform import XLSFormError, parse_xlsform

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    data = Path(path).read_bytes()

    def refuse() -> str:
        try:
            if kind == "beneficiaries":
                importer.read_table("bomb.xlsx", data)
            else:
                parse_xlsform(data)
        except (importer.ImportRefused, XLSFormError) as refused:
            return refused.messages[0]
        return "accepted"

    with app.test_request_context(headers={"Accept-Language": "en"}):
        started = time.perf_counter()
        message = refuse()
        seconds = time.perf_counter() - started
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()  # again, traced: what the call itself allocates at its peak
        refuse()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"seconds": round(seconds, 3), "traced_peak_mb": round(traced / 2**20, 1),
            "peak_rss_mb": round(peak_rss / 1024, 1), "message": message}


def main() -> int:
    """Build each bomb once, then measure each import on it in a fresh process."""
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(json.dumps(_measure(sys.argv[2], sys.argv[3])))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bladi-bombs-"))
    print(f"{'file':26} {'size':>9} {'import':14} {'time':>8} {'traced':>8} {'peak RSS':>9}"
          "  answer")
    for name in BOMBS:
        data = _build(name)
        path = folder / (name.replace(" ", "-").replace(",", "") + ".xlsx")
        path.write_bytes(data)
        for kind in IMPORTS:
            out = subprocess.run([sys.executable, __file__, "--one", str(path), kind],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:26} {len(data):>9,} {kind:14} {result['seconds']:>7.3f}s "
                  f"{result['traced_peak_mb']:>6.1f}MB {result['peak_rss_mb']:>7.1f}MB  "
                  f"{result['message'][:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
