"""lbctl/config/secrets.py: the one reader of ``*_env`` / ``*_file`` secrets, for the
Consul token and the BIG-IP password alike; errors name the key, never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import config, redact
from lbctl.config import secrets
from lbctl.errors import ConfigError

BASE = Path("/etc/lbctl")


def test_where_takes_one_of_env_or_file():
    assert secrets.where({"token_env": "CONSUL_TOKEN"}, "token", "source.consul", BASE, False) == ("CONSUL_TOKEN", None)
    assert secrets.where({"token_file": "tok"}, "token", "source.consul", BASE, False) == (None, BASE / "tok")
    assert secrets.where({}, "token", "source.consul", BASE, False) == (None, None)


@pytest.mark.parametrize("data,required,message", [
    ({"password_env": "P", "password_file": "f"}, True,
     "targets.f5: needs exactly one of password_env (an environment variable) or password_file"),
    ({}, True, "targets.f5: needs exactly one of password_env (an environment variable) or password_file"),
    ({"password_env": "P", "password_file": "f"}, False,
     "targets.f5: takes at most one of password_env (an environment variable) or password_file"),
    ({"password_env": "A B"}, True, "targets.f5.password_env: must be an environment variable name (got 'A B')"),
    ({"password_file": "a\nb"}, True, "targets.f5.password_file: must be a file path (got 'a\\nb')"),
])
def test_where_refuses(data, required, message):
    with pytest.raises(ConfigError) as err:
        secrets.where(data, "password", "targets.f5", BASE, required)
    assert str(err.value) == message


def test_consul_refuses_both_token_env_and_token_file(tmp_path):
    path = tmp_path / "lbctl.yml"
    path.write_text("source: {consul: {services: [web], token_env: T, token_file: t}}")
    with pytest.raises(ConfigError, match=r": source\.consul: takes at most one of token_env \(an environment "
                                          r"variable\) or token_file$"):
        config.load(path)


def test_read_from_env_or_file_remembers_the_value(tmp_path, monkeypatch):
    monkeypatch.setenv("LBCTL_TEST_SECRET", "env-secret-1")
    assert secrets.read("LBCTL_TEST_SECRET", None, "source.consul", "token") == "env-secret-1"
    (tmp_path / "pw").write_text("file-secret-1\r\n")
    assert secrets.read(None, tmp_path / "pw", "targets.f5", "password") == "file-secret-1"
    assert redact.mask("a env-secret-1 b file-secret-1") == "a *** b ***"


@pytest.mark.parametrize("env, file, message", [
    ("LBCTL_TEST_UNSET", None, "targets.f5.password_env: the environment variable LBCTL_TEST_UNSET is not set"),
    (None, "missing", "targets.f5.password_file: cannot read {tmp}/missing: No such file or directory"),
    (None, "empty", "targets.f5.password_file: {tmp}/empty is empty"),
    (None, "latin1", "targets.f5.password_file: cannot read {tmp}/latin1: not UTF-8 text"),
])
def test_read_errors_name_the_setting_never_the_value(tmp_path, monkeypatch, env, file, message):
    monkeypatch.delenv("LBCTL_TEST_UNSET", raising=False)
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "latin1").write_bytes(b"s\xe9cret-value")
    with pytest.raises(ConfigError) as err:
        secrets.read(env, tmp_path / file if file else None, "targets.f5", "password")
    assert str(err.value) == message.format(tmp=tmp_path)


def test_bigip_password_and_consul_token_use_the_same_reader(tmp_path, monkeypatch, caplog):
    (tmp_path / "lbctl.yml").write_text(
        "source: {consul: {services: [web], token_file: token}}\n"
        "targets: {f5: {kind: bigip, host: 192.0.2.1, username: admin, password_env: LBCTL_TEST_F5_PW}}\n")
    (tmp_path / "token").write_text("consul-token-42\n")
    monkeypatch.setenv("LBCTL_TEST_F5_PW", "f5-password-42")
    with caplog.at_level("DEBUG"):
        cfg = config.load(tmp_path / "lbctl.yml")
        assert cfg.consul.token() == "consul-token-42"
        assert cfg.targets["f5"].options.password("targets.f5") == "f5-password-42"
    assert "consul-token-42" not in repr(cfg) and "f5-password-42" not in repr(cfg)
    assert "42" not in caplog.text
    monkeypatch.delenv("LBCTL_TEST_F5_PW")
    with pytest.raises(ConfigError, match=r"^targets\.f5\.password_env: the environment variable LBCTL_TEST_F5_PW "
                                          r"is not set$"):
        cfg.targets["f5"].options.password("targets.f5")
