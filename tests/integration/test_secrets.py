"""No secret leaves lbctl, even when a server echoes it back: the Consul token and
the BIG-IP password and login token, through the CLI's output, the audit log, the
apply record and ``lbctl status`` (emulators reached through py-consul and f5-sdk)."""

from __future__ import annotations

import yaml
import pytest
from click.testing import CliRunner

from lbctl.cli import cli
from lbctl_testkit.emulators.bigip import BigIPEmulator
from lbctl_testkit.emulators.consul import ConsulEmulator

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated:DeprecationWarning")]
TOKEN, PASSWORD = "consul-token-5f1e", "bigip-pass-77a2"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("how", ["token_env", "token_file"])
def test_a_consul_error_body_with_the_token_is_masked(tmp_path, monkeypatch, how):
    monkeypatch.setenv("LBCTL_TEST_TOKEN", TOKEN)
    (tmp_path / "token").write_text(TOKEN + "\n")
    with ConsulEmulator(acl_tokens={TOKEN: "write"}) as consul:
        consul.add_service("app", service_id="app-1", address="10.0.0.1", port=80)
        source = {"address": f"127.0.0.1:{consul.port}", "services": ["app"],
                  how: "LBCTL_TEST_TOKEN" if how == "token_env" else "token"}
        (tmp_path / "lbctl.yml").write_text(yaml.safe_dump({
            "source": {"consul": source}, "targets": {"edge": {"kind": "haproxy", "config": "haproxy.cfg"}}}))
        consul.fail_next(1, 403, "/v1/health/", body="Permission denied: token {token} lacks service:read")
        result = run("render", "-c", str(tmp_path / "lbctl.yml"), "-t", "edge")
    assert result.exit_code == 1
    assert result.output == (f"lbctl: error: consul http://127.0.0.1:{consul.port}/v1/health/service/app: "
                             "403 Permission denied: token *** lacks service:read\n")


@pytest.fixture
def bigip(tmp_path, monkeypatch):
    monkeypatch.setenv("LBCTL_TEST_BIGIP_PASSWORD", PASSWORD)
    (tmp_path / "inv.yml").write_text(yaml.safe_dump({"pools": {"web": {"members": [
        {"name": "a", "address": "10.0.0.1", "port": 80}]}}}))
    with BigIPEmulator("admin", PASSWORD) as emu:
        (tmp_path / "lbctl.yml").write_text(yaml.safe_dump({
            "source": {"inventory": "inv.yml"}, "state_dir": "state", "audit_log": "audit.jsonl",
            "targets": {"f5": {"kind": "bigip", "host": "127.0.0.1", "port": emu.port, "username": "admin",
                               "password_env": "LBCTL_TEST_BIGIP_PASSWORD", "ca_bundle": emu.ca_path,
                               "retries": 0}}}))
        yield emu


def test_a_bigip_error_echoing_password_and_token_is_masked_everywhere(tmp_path, bigip):
    config = str(tmp_path / "lbctl.yml")
    bigip.fail_next(1, 500, f"request from admin:{PASSWORD} with token {{token}} failed",
                    path_prefix="/mgmt/tm/transaction")  # the apply's first write
    result = run("apply", "-c", config)
    assert result.exit_code == 1
    assert "request from admin:*** with token *** failed" in result.output
    audit = (tmp_path / "audit.jsonl").read_text()
    record = (tmp_path / "state" / "f5" / "last-apply.json").read_text()
    assert "admin:***" in audit and "admin:***" in record
    bigip.fail_next(1, 500, "status for token {token} failed", path_prefix="/mgmt/tm/")
    status = run("status", "-c", config)
    assert "status for token *** failed" in status.output and "admin:***" in status.output
    tokens = list(bigip.device.auth.tokens)
    assert len(tokens) == 2  # one login per command; each was echoed back
    for text in (result.output, audit, record, status.output):
        assert not any(secret in text for secret in [PASSWORD, *tokens])
