"""The registry of kinds (lbctl/kinds.py): every kind it names has the modules and
names the loader, renderer, checks and command line ask it for, and is packaged
and bound by the import contracts (docs/architecture.md#adding-a-kind)."""

import tomllib
from pathlib import Path

import pytest

from lbctl import kinds
from lbctl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("name", list(kinds.KINDS))
def test_each_kind_has_what_the_registry_promises(name):
    kind = kinds.get(name)
    settings = kind.settings()
    assert isinstance(settings.KEYS, tuple) and isinstance(settings.SHARED, bool)
    assert callable(settings.parse) and settings.options(None, "options") is not None
    assert kind.target().kind == name  # the target class says the same kind
    assert (ROOT / "lbctl" / "targets" / name / "__init__.py").read_text().count("\n") <= 1  # loads nothing
    for fmt in kind.formats:
        if fmt == kinds.CONFIG_FORMAT:
            assert kind.file and callable(kind.module("view").view)
        else:
            assert callable(kind.module(fmt).text) and callable(kind.module(fmt).validate)
    if kind.file:
        assert kinds.CONFIG_FORMAT in kind.formats and kind.config_name
        assert callable(kind.module("binary").check) and callable(kind.module("binary").start_command)


def test_each_kind_is_packaged_and_independent_of_the_others():
    packages = PYPROJECT["tool"]["setuptools"]["packages"]
    contracts = {c["name"]: c for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
    independent = contracts["A kind never imports another kind"]["modules"]
    for kind in kinds.KINDS.values():
        assert kind.package in packages and kind.package in independent


def test_an_unknown_kind_is_one_line():
    with pytest.raises(ConfigError, match=rf"^kind must be one of {', '.join(kinds.KINDS)} \(got 'varnish'\)$"):
        kinds.get("varnish")
    assert kinds.named(("a", "b", "c")) == "a, b or c" and kinds.named(("a",)) == "a"
