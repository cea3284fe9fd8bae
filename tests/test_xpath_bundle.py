"""The field app's XPath bundle (bladi_cases/static/js/xpath.min.js) is committed, so CI and
production never build it; this test rebuilds it with the pinned esbuild and
openrosa-xpath-evaluator (package.json, `npm ci`) and asserts the same bytes, so the served
file never drifts from its source (bladi_cases/static/src/xpath.js). `make assets` rebuilds it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "bladi_cases" / "static" / "js" / "xpath.min.js"
PINNED = ("esbuild", "openrosa-xpath-evaluator")


def _installed_or_skip() -> dict:
    """The devDependencies pinned in package.json; skip (fail under CI) when npm or the
    packages are missing or differ from the pins (a stale node_modules: `npm ci`)."""
    pins = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    problems = []
    if not shutil.which("npm"):
        problems.append("npm is not installed")
    for name in PINNED:
        manifest = ROOT / "node_modules" / name / "package.json"
        found = json.loads(manifest.read_text())["version"] if manifest.exists() else None
        if found != pins[name]:
            problems.append(f"node_modules has {name} {found}, package.json pins {pins[name]}")
    if problems:
        message = "; ".join(problems) + ": run `npm ci`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(f"SKIPPED: {message}")
    return pins


def test_the_pins_are_exact_versions():
    pins = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for name in PINNED:
        assert pins[name][0].isdigit(), f"{name}: pin an exact version, not {pins[name]!r}"
        assert lock[f"node_modules/{name}"]["version"] == pins[name], name


def test_rebuilding_the_bundle_gives_the_committed_bytes():
    _installed_or_skip()
    built = subprocess.run(["npm", "run", "--silent", "build:xpath"], cwd=ROOT,
                           capture_output=True, check=True, timeout=120).stdout
    assert built, "esbuild wrote nothing"
    assert built == BUNDLE.read_bytes(), (
        "bladi_cases/static/js/xpath.min.js differs from its source: run `make assets`")


def test_the_bundle_leaves_out_what_the_phone_cannot_use():
    text = BUNDLE.read_text(encoding="utf-8")
    assert text.startswith("/*! BladiXPath"), "the licence banner"
    assert "globalThis.BladiXPath=" in text
    # digest() needs node-forge (hundreds of KB): left out (esbuild's --external), so the
    # bundle stays small and digest() throws, naming the missing module.
    assert "Cannot find module 'node-forge'" in text
    assert len(text.encode()) < 40_000
