"""The README's settings table stays true: it lists every environment variable that
bladi_cases/config.py reads, and nothing config.py does not read.

What config.py reads is found two ways, so a new setting is caught however it is written:
its source is searched for reads of the environment (`environ.get("X")`, `environ["X"]`,
`"X" in environ`, `os.getenv("X")`, a helper called with the environment such as
`_int(environ, "X", 5)`), and `load_settings` is run in each environment on a mapping that
records every key looked up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bladi_cases import config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(config.__file__)
README = ROOT / "README.md"
SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Listed in the table but read outside config.py: the file that reads each one.
READ_ELSEWHERE = {"BLADI_INSTANCE_PATH": "bladi_cases/__init__.py"}


def table_settings() -> set[str]:
    """The variables named in the first column of the README's Configuration table."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        cells = line.strip().strip("|").split("|")
        if not line.lstrip().startswith("|") or set(cells[0].strip()) <= set("-: "):
            continue  # not a row, or the separator row
        names |= {name for name in re.findall(r"`([^`]+)`", cells[0]) if SETTING.match(name)}
    return names


def _is_environment(node: ast.AST) -> bool:
    """`environ`, `os.environ` or `environment`: the mapping settings come from."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return name in {"environ", "environment"}


def _setting(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and SETTING.match(node.value):
        return node.value
    return None


def settings_in_source(source: str) -> set[str]:
    """Environment variable names read by this Python source, found in its syntax tree."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        candidates: list[ast.AST] = []
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and _is_environment(func.value):
                candidates += node.args[:1]  # environ.get("X"), os.environ.pop("X") ...
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                    isinstance(func, ast.Name) and func.id == "getenv"):
                candidates += node.args[:1]
            elif any(_is_environment(arg) for arg in node.args):
                candidates += node.args  # a helper given the environment: _int(environ, "X")
        elif isinstance(node, ast.Subscript) and _is_environment(node.value):
            candidates.append(node.slice)
        elif isinstance(node, ast.Compare) and any(
                isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and any(
                _is_environment(comparator) for comparator in node.comparators):
            candidates.append(node.left)
        names |= {name for name in map(_setting, candidates) if name}
    return names


class RecordingEnvironment(dict):
    """A mapping that remembers each key looked up in it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()
        self.listed = False

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)

    def __iter__(self):
        self.listed = True
        return super().__iter__()

    def keys(self):
        self.listed = True
        return super().keys()

    def items(self):
        self.listed = True
        return super().items()


def settings_read_when_run(tmp_path: Path) -> set[str]:
    """Every key load_settings looks up, in each environment (production needs its keys)."""
    keys = config.load_settings({"BLADI_ENV": "testing"}, tmp_path / "testing")
    environments = [
        {"BLADI_ENV": "production", "SECRET_KEY": keys["SECRET_KEY"],
         "BLADI_DATA_KEY": keys["BLADI_DATA_KEY"]},
        {"BLADI_ENV": "development"},
        {"BLADI_ENV": "testing"},
    ]
    read: set[str] = set()
    for values in environments:
        environ = RecordingEnvironment(values)
        config.load_settings(environ, tmp_path / values["BLADI_ENV"])
        assert not environ.listed, ("config.py lists the environment: say here how to find "
                                    "the settings it reads")
        read |= environ.read
    return read


@pytest.fixture
def read_by_config(tmp_path) -> set[str]:
    return settings_in_source(CONFIG.read_text(encoding="utf-8")) | settings_read_when_run(
        tmp_path)


def test_the_extraction_finds_settings_however_they_are_read():
    source = '''
import os
def load(environ):
    a = environ.get("A_GET", "x")
    b = environ["B_ITEM"]
    c = "C_IN" in environ
    d = _int(environ, "D_HELPER", 5)
    e = os.environ.get("E_OS")
    f = os.getenv("F_GETENV")
    stored = {}
    g = stored.get("NOT_A_SETTING")
'''
    assert settings_in_source(source) == {"A_GET", "B_ITEM", "C_IN", "D_HELPER", "E_OS",
                                          "F_GETENV"}


def test_every_setting_config_reads_is_in_the_readme_table(read_by_config):
    missing = read_by_config - table_settings()
    assert not missing, f"read by config.py but not in the README's table: {sorted(missing)}"


def test_every_row_of_the_readme_table_is_read(read_by_config):
    unread = table_settings() - read_by_config - set(READ_ELSEWHERE)
    assert not unread, f"in the README's table but not read by config.py: {sorted(unread)}"


@pytest.mark.parametrize("name", sorted(READ_ELSEWHERE))
def test_settings_read_elsewhere_are_listed_and_read_there(name):
    assert name in table_settings(), f"{name} is excused as read elsewhere but not in the table"
    where = READ_ELSEWHERE[name]
    assert name in settings_in_source((ROOT / where).read_text(encoding="utf-8")), (
        f"{where} no longer reads {name}: update READ_ELSEWHERE or the table")
