"""redact.py: masking at every exit that is not a server
round trip (those are in tests/integration/test_secrets.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests

from lbctl import redact
from lbctl.watch import logs
from lbctl.config import consul as consul_config
from lbctl.audit import AuditLog
from lbctl.console import ONE_SHOT_LOG
from lbctl.errors import ConfigError
from lbctl.watch.metrics import Metrics, StatusServer
from lbctl.targets.state import TargetState


def test_consul_token_uses_the_same_reader(tmp_path):
    (tmp_path / "token").write_text("consul-file-token\n")
    settings = consul_config.consul({"token_file": "token", "services": ["app"]}, tmp_path, "election.consul")
    assert settings.token() == "consul-file-token"
    assert redact.mask("x consul-file-token") == "x ***"
    (tmp_path / "token").write_text("")
    with pytest.raises(ConfigError, match=r"^election\.consul\.token_file: .* is empty$"):
        settings.token()


def test_masks_url_and_json_forms_but_not_short_values():
    redact.remember('p@ss "w/rd"')
    redact.remember("abc")
    assert redact.mask('x p@ss "w/rd" y') == "x *** y"
    assert redact.mask("?password=p%40ss%20%22w%2Frd%22") == "?password=***"
    assert redact.mask(json.dumps({"pw": 'p@ss "w/rd"'})) == '{"pw": "***"}'
    assert redact.mask("abc") == "abc"
    assert redact.scrub({"a": ['p@ss "w/rd"', 1], "b": None}) == {"a": ["***", 1], "b": None}


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_log_records_and_tracebacks_are_masked(fmt, monkeypatch):
    redact.remember("log-secret-42")
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(logging.getLogger("lbctl"), "handlers", [])  # as watch does: no one-shot lines
    logs.setup(fmt)
    log = logging.getLogger("lbctl.test")
    log.warning("consul said %s", "denied for log-secret-42")
    try:
        raise ValueError("boom log-secret-42")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    logging.getLogger().handlers[:] = []
    assert "log-secret-42" not in text
    assert "consul said denied for ***" in text and "ValueError: boom ***" in text
    if fmt == "json":
        assert json.loads(text.splitlines()[1])["exception"].endswith("ValueError: boom ***")


def test_audit_log_and_apply_record_are_masked(tmp_path):
    redact.remember("audit-secret-7")
    state = TargetState(tmp_path / "state", "f5", 1)
    audit = AuditLog(tmp_path / "audit.log")
    state.listeners.append(audit)
    seen = []
    state.listeners.append(seen.append)
    state.record("failed", "device said audit-secret-7", None, None)
    assert "audit-secret-7" not in (tmp_path / "audit.log").read_text()
    assert state.last()["message"] == "device said ***"
    assert seen[0]["message"] == "device said ***"
    audit({"message": "direct audit-secret-7"})
    assert "audit-secret-7" not in (tmp_path / "audit.log").read_text()


def test_status_pages_are_masked():
    redact.remember("page-secret-9")
    server = StatusServer(("127.0.0.1", 0), Metrics(), lambda: True, lambda: (False, "consul: page-secret-9 denied"))
    try:
        resp = requests.get(f"http://127.0.0.1:{server.server_address[1]}/readyz", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert resp.status_code == 503 and resp.text == "consul: *** denied\n"


def test_one_shot_log_lines_are_masked(monkeypatch):
    """The one-shot commands' log lines (console.py) mask like every other exit."""
    redact.remember("echo-secret-42")
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    ONE_SHOT_LOG.handle(logging.makeLogRecord({"msg": "denied for %s", "args": ("echo-secret-42",),
                                               "levelno": logging.WARNING, "levelname": "WARNING"}))
    assert stream.getvalue() == "lbctl: warning: denied for ***\n"
