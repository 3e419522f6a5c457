"""The real ``haproxy -c`` and ``nginx -t`` on everything lbctl ships."""

from __future__ import annotations  # config.nginx is loaded on first use, not at import

import subprocess

import pytest

from lbctl import config, inventory
from lbctl.errors import ValidationError
from lbctl.render import render
from lbctl.targets.haproxy import binary as haproxy
from lbctl.targets.nginx import binary as nginx
from lbctl.targets.nginx.settings import NginxOptions
from tests.helpers import INVENTORIES, minimal_raw, needs
from lbctl_testkit.support import find_binary, requires_haproxy, requires_nginx

pytestmark = pytest.mark.integration


def nginx_options(tmp_path) -> NginxOptions:
    return config.options("nginx", {"pid_file": str(tmp_path / "nginx.pid"), "error_log": str(tmp_path / "error.log"),
                                      "temp_dir": str(tmp_path)})


@needs(requires_haproxy)
@pytest.mark.parametrize("path", INVENTORIES, ids=[p.name for p in INVENTORIES])
def test_haproxy_accepts_every_shipped_inventory(path, tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(inventory.load(path), "haproxy", config.options("haproxy")))
    haproxy.check(cfg, find_binary("haproxy"))


@needs(requires_nginx)
@pytest.mark.parametrize("path", INVENTORIES, ids=[p.name for p in INVENTORIES])
def test_nginx_accepts_every_shipped_inventory(path, tmp_path):
    cfg = tmp_path / "nginx.conf"
    cfg.write_text(render(inventory.load(path), "nginx", nginx_options(tmp_path)))
    nginx.check(cfg, find_binary("nginx"))


@needs(requires_haproxy)
def test_tls_listener_with_a_real_certificate(tmp_path):
    pem = tmp_path / "site.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", str(pem), "-out", str(pem), "-days", "1"], check=True, capture_output=True)
    raw = minimal_raw()
    raw["listeners"]["web"]["tls"] = {"cert": str(pem)}
    desired = inventory.from_raw(raw)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(desired, "haproxy", config.options("haproxy")))
    haproxy.check(cfg, find_binary("haproxy"))
    if find_binary("nginx"):
        conf = tmp_path / "nginx.conf"
        conf.write_text(render(desired, "nginx", nginx_options(tmp_path)))
        nginx.check(conf, find_binary("nginx"))


@needs(requires_haproxy)
def test_haproxy_rejection_carries_its_own_words(tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(inventory.from_raw(minimal_raw()), "haproxy", config.options("haproxy"))
                   + "    frobnicate yes\n")
    with pytest.raises(ValidationError) as err:
        haproxy.check(cfg, find_binary("haproxy"))
    message = str(err.value)
    assert message.startswith(f"haproxy rejected {cfg}: [ALERT] : config : parsing [{cfg}:")
    assert message.endswith(": unknown keyword 'frobnicate' in 'backend' section")
    assert "\n" not in message


@needs(requires_nginx)
def test_nginx_rejection_carries_its_own_words(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(inventory.from_raw(minimal_raw()), "nginx", nginx_options(tmp_path)) + "frobnicate yes;\n")
    with pytest.raises(ValidationError) as err:
        nginx.check(conf, find_binary("nginx"))
    message = str(err.value)
    assert message.startswith(f'nginx rejected {conf}: [emerg] unknown directive "frobnicate" in {conf}:')


@needs(requires_nginx)
def test_sub_second_checks_render_as_whole_seconds_for_nginx(tmp_path):
    raw = minimal_raw()
    raw["pools"]["app"]["health"] = {"type": "http", "interval": "100ms", "rise": 1}
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(inventory.from_raw(raw), "nginx", nginx_options(tmp_path)))
    assert "fail_timeout=1s" in conf.read_text()
    nginx.check(conf, find_binary("nginx"))
