"""Shared test set-up.

With LBCTL_REQUIRE_INTEGRATION=1 (set by .ci/run) an integration test that
skipped because a binary is missing counts as a failure: CI must run them all.
So does a test, or a whole file, skipped because a Python module is missing
(``pytest.importorskip``): the test extras install every one the tests use.
"""

import os
import re

import pytest

from lbctl import redact
from lbctl_testkit.support import SKIP_PREFIX


@pytest.fixture(autouse=True)
def no_secrets_from_other_tests(monkeypatch):
    """redact.py masks every secret the process has seen, for the life of the process:
    each test starts with none (a password "wrong" in one test would mask a path
    ending in /wrong in another)."""
    monkeypatch.setattr(redact, "_known", set())
    monkeypatch.setattr(redact, "_order", [])


# pytest.importorskip's reason when the module is missing
MISSING_MODULE = re.compile(r"^could not import '[^']+'")


def fail_forbidden_skip(report) -> None:
    """A skip for a missing binary or module becomes a failure when CI requires every test."""
    if not report.skipped or os.environ.get("LBCTL_REQUIRE_INTEGRATION") != "1":
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if SKIP_PREFIX in reason or MISSING_MODULE.match(reason.removeprefix("Skipped: ")):
        report.outcome = "failed"
        report.longrepr = f"test skipped, which CI does not allow: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    fail_forbidden_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole file skipped at import (``pytest.importorskip`` at module level)."""
    outcome = yield
    fail_forbidden_skip(outcome.get_result())
