"""The start command apply prints when a load balancer is not running (docs/running.md);
tests/integration/test_examples.py runs it for real."""

from pathlib import Path

from lbctl import config
from lbctl.targets import start


def target(raw: dict) -> config.Target:
    return config.target("edge", raw, "targets.edge", Path("/srv/lb"), Path("/srv/lb/state"))


def test_haproxy_with_and_without_a_master_log():
    base = {"kind": "haproxy", "config": "haproxy.cfg", "binary": "/opt/haproxy", "master_socket": "run/m.sock"}
    assert start.command(target(base)) == "/opt/haproxy -D -W -f /srv/lb/haproxy.cfg -S /srv/lb/run/m.sock,level,admin"
    logged = target({**base, "master_log": "run/master log"})
    assert start.command(logged) == ("/opt/haproxy -W -f /srv/lb/haproxy.cfg -S /srv/lb/run/m.sock,level,admin "
                                     "2>>'/srv/lb/run/master log' </dev/null &")


def test_nginx_whole_file_or_included():
    whole = target({"kind": "nginx", "config": "nginx.conf", "binary": "/opt/nginx", "error_log": "logs/error.log"})
    assert start.command(whole) == "/opt/nginx -c /srv/lb/nginx.conf -e /srv/lb/logs/error.log"
    included = target({"kind": "nginx", "config": "conf.d/lbctl.conf", "main_config": "nginx.conf", "binary": "/opt/nginx"})
    assert start.command(included) == "/opt/nginx -c /srv/lb/nginx.conf"
    assert start.hint(whole).endswith(" (docs/running.md)")
