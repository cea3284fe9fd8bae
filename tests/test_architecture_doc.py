"""docs/ARCHITECTURE.md stays true: every path it names exists, every feature package is on
its map, and every function it names as the home of a rule is defined where it says."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
CODE = re.compile(r"`([^`]+)`")


def _paths(text: str) -> list[str]:
    return [token for token in CODE.findall(text)
            if "/" in token and not token.startswith(("/", "flask")) and " " not in token
            and "<feature>" not in token]  # the checklist's placeholders


def _resolve(path: str) -> Path:
    candidate = ROOT / path
    return candidate if candidate.exists() else ROOT / "bladi_cases" / path


def test_every_named_path_exists():
    missing = [p for p in _paths(DOC.read_text(encoding="utf-8")) if not _resolve(p).exists()]
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"


def test_every_feature_package_is_on_the_map():
    text = DOC.read_text(encoding="utf-8")
    packages = [p.relative_to(ROOT).as_posix() + "/"
                for parent in ("bladi_cases/services", "bladi_cases/blueprints")
                for p in sorted((ROOT / parent).iterdir())
                if p.is_dir() and (p / "__init__.py").exists()]
    modules = [p.relative_to(ROOT).as_posix() for p in sorted(
        (ROOT / "bladi_cases/services").glob("*.py")) if p.name != "__init__.py"]
    missing = [p for p in packages + modules if f"`{p}`" not in text]
    assert not missing, f"not on the code map of docs/ARCHITECTURE.md: {missing}"


def _defines(path: Path, name: str) -> bool:
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    pattern = re.compile(rf"^\s*(def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]",
                         re.M)
    return any(pattern.search(f.read_text(encoding="utf-8")) for f in files)


def test_every_named_home_defines_what_it_names():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Where each cross-cutting rule lives", 1)[1].split("\n## ", 1)[0]
    wrong = []
    for row in section.splitlines():
        if not row.startswith("|") or "---" in row:
            continue
        home = row.rsplit("|", 2)[-2]
        files = [_resolve(p) for p in _paths(home)]
        for name in CODE.findall(home):
            if "/" in name or not re.fullmatch(r"[A-Za-z_]\w*", name):
                continue
            if not any(_defines(f, name) for f in files):
                wrong.append(name)
    assert not wrong, f"docs/ARCHITECTURE.md names functions not defined where it says: {wrong}"
