"""tests/conftest.py's rule, run in a pytest of its own: with LBCTL_REQUIRE_INTEGRATION=1 a
test, or a whole file, skipped for a missing binary or Python module fails; other skips stay."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT

pytest_plugins = ["pytester"]

FILES = {
    "test_whole_file": 'import pytest\npytest.importorskip("no_such_module_lbctl")\n\ndef test_a():\n    pass\n',
    "test_each": ('import pytest\nfrom lbctl_testkit.support import SKIP_PREFIX\n\n'
                  'def test_module():\n    pytest.importorskip("no_such_module_lbctl")\n\n'
                  'def test_binary():\n    pytest.skip(f"{SKIP_PREFIX}: nothing binary not found")\n\n'
                  'def test_other():\n    pytest.skip("not on this platform")\n'),
}


@pytest.fixture
def suite(pytester):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(**FILES)
    return pytester


def test_ci_fails_a_skip_for_a_missing_module_or_binary(suite, monkeypatch):
    monkeypatch.setenv("LBCTL_REQUIRE_INTEGRATION", "1")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "test_each.py")
    result.assert_outcomes(failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*test_module - test skipped, which CI does not allow*"])
    whole = suite.runpytest_subprocess("-p", "no:cacheprovider", "test_whole_file.py")
    assert whole.ret != 0
    whole.stdout.fnmatch_lines(["*test skipped, which CI does not allow: *could not import 'no_such_module_lbctl'*"])


def test_outside_ci_they_are_skips(suite, monkeypatch):
    monkeypatch.delenv("LBCTL_REQUIRE_INTEGRATION", raising=False)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(skipped=4)
