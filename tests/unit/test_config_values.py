"""lbctl/config/values.py: each validator accepts what it should, refuses the rest,
and says so in one format: ``<key path>: must be ... (got <value>)``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lbctl import config
from lbctl.config import values as val
from lbctl.errors import ConfigError


def refused(check, value, *args) -> str:
    with pytest.raises(ConfigError) as err:
        check(value, "a.b", *args)
    message = str(err.value)
    assert "\n" not in message and message.startswith("a.b: must ")
    return message


@pytest.mark.parametrize("value,ms", [("250ms", 250), ("2s", 2000), ("1m", 60_000), ("1h", 3_600_000), (5, 5000),
                                      ("5", 5000), ("24h", 86_400_000)])
def test_duration_accepts(value, ms):
    assert val.duration(value, "a.b") == ms
    assert val.duration(value, "a.b", zero=True) == ms


@pytest.mark.parametrize("value", [0, "0", "0ms", "0s", "0m", "0h"])
def test_duration_zero_only_where_the_option_allows_it(value):
    assert val.duration(value, "a.b", zero=True) == 0
    assert refused(val.duration, value) == (
        f"a.b: must be a duration such as 500ms, 2s, 1m (at most 24h) (got {value!r})")


@pytest.mark.parametrize("value", ["25h", "-1s", "1.5s", "1d", "", " 1s", "1 s", True, None, 1.0, [1], "0x1s"])
def test_duration_refuses(value):
    assert refused(val.duration, value).startswith("a.b: must be a duration such as 500ms")
    assert refused(val.duration, value, True).startswith(
        "a.b: must be a duration such as 500ms, 2s, 1m (at most 24h), or 0")


def test_boolean():
    assert val.boolean(True, "a.b") is True and val.boolean(False, "a.b") is False
    for bad in (1, 0, "true", "yes"):
        assert refused(val.boolean, bad).startswith("a.b: must be true or false (got")


@pytest.mark.parametrize("value,default,expected", [
    ("127.0.0.1:8500", None, ("127.0.0.1", 8500)), ("[::1]:9105", None, ("::1", 9105)),
    ("consul.example.com:8501", None, ("consul.example.com", 8501)), ("consul.local", 8500, ("consul.local", 8500)),
    ("[::1]", 8500, ("::1", 8500)), ("10.0.0.1", 8500, ("10.0.0.1", 8500)),
])
def test_host_port_accepts(value, default, expected):
    assert val.host_port(value, "a.b", default) == expected


@pytest.mark.parametrize("value,default,reason", [
    ("127.0.0.1", None, "host:port"), ("[::1]", None, "host:port"), ("::1", None, "host:port"),
    ("127.0.0.1:", None, "host:port"), ("127.0.0.1:x", 8500, "host:port"), (9105, None, "host:port"),
    ("127.0.0.1:0", None, "an integer from 1 to 65535"), ("127.0.0.1:70000", 8500, "an integer from 1 to 65535"),
    ("a b:80", None, "an IPv4 or IPv6 address or an RFC 1123 host name"),
])
def test_host_port_refuses(value, default, reason):
    assert refused(val.host_port, value, default).startswith(f"a.b: must be {reason}")


def test_ports_names_enumerations_and_shares():
    assert val.port(443, "a.b") == 443
    for bad in (0, 65536, "80", True):
        assert refused(val.port, bad).startswith("a.b: must be an integer from 1 to 65535")
    assert val.ident("web-1.a_b", "a.b") == "web-1.a_b"
    for bad in ("web;", "a b", "", "x" * 129, 7):
        assert refused(val.ident, bad).startswith("a.b: must be a name of letters")
    assert val.choice("as3", "a.b", ("imperative", "as3")) == "as3"
    assert refused(val.choice, "AS3", ("imperative", "as3")) == "a.b: must be one of imperative, as3 (got 'AS3')"
    assert val.share(1, "a.b") == 1.0 and val.share(0.25, "a.b") == 0.25
    for bad in (0, 1.5, -0.1, "0.5", True):
        assert refused(val.share, bad).startswith("a.b: must be a share above 0 and at most 1")


def test_paths_and_environment_names():
    assert val.local_path("secrets/f5", "a.b") == "secrets/f5"
    for bad in ("", "a\nb", "a\x00", "x" * 1025, 7):
        assert refused(val.local_path, bad).startswith("a.b: must be a file path")
    assert val.file_in(Path("/etc/lbctl"), {"f": "tls/ca.pem"}, "f", "s") == Path("/etc/lbctl/tls/ca.pem")
    assert val.file_in(Path("/etc/lbctl"), {"f": "/abs"}, "f", "s") == Path("/abs")
    assert val.file_in(Path("/etc/lbctl"), {}, "f", "s") is None
    assert val.env_name("LBCTL_TOKEN", "a.b") == "LBCTL_TOKEN"
    for bad in ("A B", "1X", "A-B", ""):
        assert refused(val.env_name, bad).startswith("a.b: must be an environment variable name")


@pytest.mark.parametrize("text,expected", [
    ("watch: {min_wait: 0ms}", ("watch", "min_wait_ms", 0)),
    ("election: {lock_delay: 0ms, consul: {address: 127.0.0.1}}", ("election", "lock_delay_s", 0)),
])
def test_zero_where_it_means_none(tmp_path, text, expected):
    path = tmp_path / "lbctl.yml"
    path.write_text(text)
    section, name, value = expected
    assert getattr(getattr(config.load(path), section), name) == value


@pytest.mark.parametrize("key", ["lock_timeout", "check_timeout", "reload_timeout", "write_delay", "hard_stop_after"])
def test_zero_is_refused_for_timeouts(tmp_path, key):
    path = tmp_path / "lbctl.yml"
    path.write_text(f"targets: {{edge: {{kind: haproxy, config: x, {key}: 0ms}}}}")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert str(err.value) == (f"{path}: targets.edge.{key}: must be a duration such as 500ms, 2s, 1m (at most 24h) "
                              "(got '0ms')")


def test_metrics_listen_needs_a_port(tmp_path):
    path = tmp_path / "lbctl.yml"
    path.write_text("metrics: {listen: '127.0.0.1:9105'}")
    assert config.load(path).metrics_listen == ("127.0.0.1", 9105)
    path.write_text("metrics: {listen: '127.0.0.1'}")
    with pytest.raises(ConfigError, match=r"metrics\.listen: must be host:port \(got '127\.0\.0\.1'\)$"):
        config.load(path)


def test_pyyaml_is_imported_only_to_read_a_file():
    code = "import sys, lbctl.config; assert 'yaml' not in sys.modules, 'yaml imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
