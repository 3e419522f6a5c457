"""Shared test set-up.

With LBCTL_REQUIRE_INTEGRATION=1 (set by .ci/run) an integration test that
skipped because a binary is missing counts as a failure: CI must run them all.
"""

import os

import pytest

from lbctl import redact
from tests.support import SKIP_PREFIX


@pytest.fixture(autouse=True)
def no_secrets_from_other_tests(monkeypatch):
    """redact.py masks every secret the process has seen, for the life of the process:
    each test starts with none (a password "wrong" in one test would mask a path
    ending in /wrong in another)."""
    monkeypatch.setattr(redact, "_known", set())
    monkeypatch.setattr(redact, "_order", [])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("LBCTL_REQUIRE_INTEGRATION") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if SKIP_PREFIX in reason:
            report.outcome = "failed"
            report.longrepr = f"integration test skipped, which CI does not allow: {reason}"
