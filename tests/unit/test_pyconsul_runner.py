"""The py-consul fidelity run and its documentation name the same deselected tests."""

from __future__ import annotations

import re
from pathlib import Path

from tests.pyconsul import run

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def test_docs_list_exactly_the_deselected_tests():
    listed = set(re.findall(r"^\| `(tests/[^`]+)` \|", DOC.read_text(), re.MULTILINE))
    assert listed == set(run.DESELECTED)
    assert all(run.DESELECTED.values()), "every deselected test has a reason"


def test_the_version_is_pinned_once_and_named_in_the_docs():
    assert re.fullmatch(r"\d+\.\d+\.\d+", run.PY_CONSUL_VERSION)
    assert f"py-consul {run.PY_CONSUL_VERSION}: " in DOC.read_text()
