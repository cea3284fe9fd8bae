"""The pins stay complete: every package installed in the virtual environment is pinned in
requirements-dev.txt, and the compiled requirements*.txt agree with the requirements*.in
they are compiled from (`make pins`)."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The tools a virtual environment starts with (pip-compile leaves pip and setuptools out of a
# requirements file on purpose); everything else must be pinned.
BOOTSTRAP = {"pip", "setuptools", "wheel"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^\s;]+)")


def canonical(name: str) -> str:
    """A distribution name normalised as PEP 503 does (Flask_SQLAlchemy -> flask-sqlalchemy)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: Path, seen: set[Path] | None = None) -> tuple[dict[str, str], list]:
    """The `name == version` pins of a requirements file, following `-r` includes (not `-c`
    constraints, which install nothing), and the requirement lines that are not such a pin."""
    seen = set() if seen is None else seen
    path = path.resolve()
    if path in seen:
        return {}, []
    seen.add(path)
    pins: dict[str, str] = {}
    unpinned: list[str] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        include = re.match(r"^(-r|--requirement)[\s=]+(\S+)$", line)
        if include:
            more, bad = read_requirements(path.parent / include.group(2), seen)
            pins.update(more)
            unpinned += bad
        elif line.startswith("-"):
            continue  # -c constraints and pip options
        elif match := PIN.match(line):
            pins[canonical(match.group(1))] = match.group(3)
        else:
            unpinned.append(f"{path.name}: {line}")
    return pins, unpinned


def installed() -> dict[str, str]:
    """Distributions importable from this interpreter, by canonical name (first on sys.path
    wins, as for imports)."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonical(name), dist.version)
    return found


def this_project() -> str:
    """The project's own name, in case it is installed (`pip install -e .`)."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return canonical(tomllib.load(file)["project"]["name"])


def in_files() -> list[Path]:
    return sorted(ROOT.glob("requirements*.in"))


def test_every_installed_package_is_pinned():
    if sys.prefix == sys.base_prefix:
        pytest.skip("SKIPPED: not in a virtual environment (make install makes .venv)")
    pins, _ = read_requirements(ROOT / "requirements-dev.txt")
    extra = set(installed()) - set(pins) - BOOTSTRAP - {this_project()}
    assert not extra, (
        f"installed but not pinned in requirements-dev.txt: {', '.join(sorted(extra))}. "
        "Add it to requirements*.in if the code uses it, then `make pins`; otherwise "
        "uninstall it (.venv/bin/pip uninstall NAME)")


def test_installed_versions_are_the_pinned_ones():
    if sys.prefix == sys.base_prefix:
        pytest.skip("SKIPPED: not in a virtual environment (make install makes .venv)")
    pins, _ = read_requirements(ROOT / "requirements-dev.txt")
    have = installed()
    wrong = [f"{name} {have[name]} (pinned {pins[name]})"
             for name in sorted(set(have) & set(pins)) if have[name] != pins[name]]
    assert not wrong, (f"installed at another version than pinned: {', '.join(wrong)}; "
                       "`make install` installs the pins")


def test_compiled_files_pin_every_line():
    for txt in sorted(ROOT.glob("requirements*.txt")):
        _, unpinned = read_requirements(txt)
        assert not unpinned, f"not pinned with ==: {unpinned}"


def test_the_in_files_pin_their_direct_dependencies():
    assert {path.name for path in in_files()} >= {"requirements.in", "requirements-dev.in"}
    for source in in_files():
        _, unpinned = read_requirements(source)
        assert not unpinned, f"a direct dependency without an == pin: {unpinned}"


@pytest.mark.parametrize("source", [path.name for path in in_files()])
def test_each_in_file_compiles_to_its_txt_at_the_same_versions(source):
    direct, _ = read_requirements(ROOT / source)
    compiled, _ = read_requirements(ROOT / source.replace(".in", ".txt"))
    differ = [f"{name}=={version} (compiled: {compiled.get(name, 'missing')})"
              for name, version in sorted(direct.items()) if compiled.get(name) != version]
    assert not differ, f"{source} and its .txt disagree, run `make pins`: {', '.join(differ)}"


def test_dev_pins_keep_the_runtime_versions():
    runtime, _ = read_requirements(ROOT / "requirements.txt")
    dev, _ = read_requirements(ROOT / "requirements-dev.txt")
    differ = [f"{name} {version} / {dev.get(name, 'missing')}"
              for name, version in sorted(runtime.items()) if dev.get(name) != version]
    assert not differ, f"requirements.txt / requirements-dev.txt disagree: {', '.join(differ)}"
