"""The public XLSForm corpus (tests/data/xlsforms/) says where every form comes from.

Each form was written by others and is kept under its own licence: SOURCES.csv must name the
repository, the path in it, the release, the licence and the SHA-256 of every file, and list
no file that is missing. The importer's acceptance of the corpus is measured by
tests/xlsform_corpus.py.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

from tests.xlsform_corpus import CORPUS, forms, read_sources

# Licences a form may come under; each one's text is kept in LICENSES/.
LICENCES = {"BSD-2-Clause": "BSD-2-Clause.", "MIT": "MIT."}
COLUMNS = ["file", "repository", "path", "release", "package", "licence", "sha256"]


def test_sources_has_the_expected_columns():
    with (CORPUS / "SOURCES.csv").open(encoding="utf-8") as fh:
        assert fh.readline().strip().split(",") == COLUMNS


def test_every_form_is_listed_once_with_its_origin_and_licence():
    rows = read_sources()
    listed = [row["file"] for row in rows]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    on_disk = {path.name for path in forms()}
    assert on_disk - set(listed) == set(), "forms missing from SOURCES.csv"
    assert set(listed) - on_disk == set(), "SOURCES.csv lists files that are not there"
    assert len(on_disk) >= 40
    for row in rows:
        assert all(row[column].strip() for column in COLUMNS), row
        assert "/" in row["repository"], row
        assert PurePosixPath(row["path"]).suffix == PurePosixPath(row["file"]).suffix, row
        assert row["licence"] in LICENCES, row


def test_forms_are_the_published_bytes():
    for row in read_sources():
        data = (CORPUS / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]
        assert len(data) <= 1_000_000, row["file"]


def test_every_licence_used_has_its_text():
    texts = [path.name for path in (CORPUS / "LICENSES").iterdir()]
    for licence in {row["licence"] for row in read_sources()}:
        assert any(name.startswith(LICENCES[licence]) for name in texts), licence
