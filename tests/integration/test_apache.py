"""Apache httpd as a target, end to end: the real apache2 on loopback, real backends,
real HTTP (docs/apache.md).  test_apply.py runs the deploy path's shared tests
(apply, rollback, status, crashes) against apache too."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

from click.testing import CliRunner

from lbctl import config
from lbctl.cli import cli
from lbctl.errors import ValidationError
from lbctl.targets import start
from lbctl.targets.apache import binary as apache_binary
from lbctl.targets.procfs import alive
from lbctl_testkit.support import Backend, find_binary, http_get, wait_until
from lbctl_testkit.support.apache import open_up, requires_apache
from lbctl_testkit.support.stack import Stack
from lbctl_testkit.support.world import running_world

pytestmark = requires_apache
FAST_CHECK = {"type": "tcp", "interval": "100ms", "rise": 1, "fall": 1}


@pytest.fixture
def backends():
    with Backend("a") as a, Backend("b") as b, Backend("c") as c:
        yield {"a": a, "b": b, "c": c}


def pool(backends, *members, **settings) -> dict:
    """Pool of ``members``: names of backends, or (name, {member fields})."""
    rows = []
    for m in members:
        name, extra = (m, {}) if isinstance(m, str) else m
        rows.append({"name": name, "address": "127.0.0.1", "port": backends[name].port, **extra})
    return {"health": FAST_CHECK, **settings, "members": rows}


def serve(stack: Stack, pools: dict, **listener) -> None:
    stack.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": stack.port, "default_pool": "app",
                                           **listener}}, "pools": pools})
    result = stack.run("apply")
    assert result.exit_code == 0, result.output


@pytest.fixture
def stack(tmp_path, backends):
    s = Stack(tmp_path, "apache")
    serve(s, {"app": pool(backends, "a")})
    with s.running():
        yield s


def get(stack: Stack, path: str = "/", **headers):
    return http_get(f"http://127.0.0.1:{stack.port}{path}", headers=headers)


def spread(stack: Stack, n: int = 20, path: str = "/", **headers) -> Counter:
    return Counter(r.headers.get("x-backend") or f"status {r.status}" for r in (get(stack, path, **headers)
                                                                                  for _ in range(n)))


def test_host_and_path_routes_reach_their_pools(stack, backends):
    pools = {"app": pool(backends, "a"), "api": pool(backends, "b"), "static": pool(backends, "c")}
    serve(stack, pools, routes=[{"host": "api.example.com", "pool": "api"}, {"path": "/static/", "pool": "static"}])
    assert spread(stack, 4) == {"a": 4}
    assert spread(stack, 4, Host="api.example.com") == {"b": 4}
    assert spread(stack, 4, Host="API.example.com:80") == {"b": 4}  # host names match without case or port
    assert spread(stack, 4, "/static/x") == {"c": 4}
    assert spread(stack, 4, "/static/y", Host="www.example.com") == {"c": 4}  # host-less routes hold on other hosts
    # a host's own route comes first, its paths too (the one route order; HAProxy and nginx agree)
    assert spread(stack, 4, "/static/x", Host="api.example.com") == {"b": 4}
    assert spread(stack, 4, "/staticx") == {"a": 4}  # a path route holds whole path segments


def test_weights_share_the_traffic(stack, backends):
    serve(stack, {"app": pool(backends, ("a", {"weight": 1}), ("b", {"weight": 3}))})
    got = spread(stack, 80)
    assert set(got) == {"a", "b"} and 2 * got["a"] <= got["b"], got


def test_drain_keeps_only_sticky_clients_and_maint_none(stack, backends):
    serve(stack, {"app": pool(backends, ("a", {"state": "drain"}), "b", ("c", {"state": "maint"}),
                              sticky_cookie="SID")})
    assert spread(stack, 10) == {"b": 10}
    assert spread(stack, 5, Cookie="SID=.a") == {"a": 5}  # drain: its sticky clients stay
    assert spread(stack, 5, Cookie="SID=.c") == {"b": 5}  # maintenance: not even them


def test_sticky_sessions_follow_the_route_cookie(stack, backends):
    # A pool name in capitals: apache keeps balancer names in lower case, the cookie's condition too.
    serve(stack, {"app": pool(backends, "a"), "Web": pool(backends, "a", "b", sticky_cookie="SID")}, default_pool="Web")
    first = get(stack)
    member = first.headers["x-backend"]
    assert first.headers["set-cookie"].startswith(f"SID=.{member}; path=/")
    assert spread(stack, 10, Cookie=f"SID=.{member}") == {member: 10}
    assert "set-cookie" not in get(stack, Cookie=f"SID=.{member}").headers  # set only when the route changes


def test_backup_takes_over_when_the_others_fail_their_checks(tmp_path, backends):
    s = Stack(tmp_path, "apache")
    with Backend("x") as x:
        backends = {**backends, "x": x}
        serve(s, {"app": pool(backends, "x", ("b", {"state": "backup"}))})
        with s.running():
            assert spread(s, 6) == {"x": 6}
            x.close()
            wait_until(lambda: spread(s, 6) == {"b": 6}, 10, "the backup to serve once x fails its check")


def test_http_checks_take_a_failing_member_out(stack, backends):
    check = {"type": "http", "path": "/health", "expect_status": 200, "interval": "100ms", "rise": 1, "fall": 1}
    with Backend("x") as x:
        serve(stack, {"app": pool({**backends, "x": x}, "a", "x", health=check)})
        wait_until(lambda: set(spread(stack, 10)) == {"a", "x"}, 10, "both members to pass their checks")
        x.close()
        wait_until(lambda: spread(stack, 10) == {"a": 10}, 10, "x to fail its check and leave")
        assert spread(stack, 20) == {"a": 20}


def test_status_names_the_parent_children_and_generation(stack, backends):
    before = json.loads(stack.run("status", "--json").output)[0]["process"]
    serve(stack, {"app": pool(backends, "b", balance="leastconn")})  # a pool setting: a graceful
    after = json.loads(stack.run("status", "--json").output)[0]["process"]
    assert after["master_pid"] == before["master_pid"] == stack.process.master_pid
    assert after["config_generation"] == before["config_generation"] + 1
    assert not set(after["workers"]) & set(before["workers"])  # every child replaced
    assert after["manager"] == stack.settings["targets"]["edge"]["manager"]


def test_a_configuration_apache_rejects_changes_nothing(stack, backends, tmp_path):
    before, status = stack.live.read_text(), json.loads(stack.run("status", "--json").output)[0]["process"]
    raw = {"listeners": {"web": {"address": "127.0.0.1", "port": stack.port, "default_pool": "app",
                                 "tls": {"cert": str(tmp_path / "missing.pem")}}},
           "pools": {"app": pool(backends, "b")}}
    stack.write_raw(raw)
    result = stack.run("apply")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"lbctl: error: apache rejected {stack.live.parent}/.httpd.conf.check")
    assert f"SSLCertificateFile: file '{tmp_path}/missing.pem' does not exist or is empty" in result.output
    assert stack.live.read_text() == before
    assert json.loads(stack.run("status", "--json").output)[0]["process"] == status
    assert spread(stack, 5) == {"a": 5}


class Load:
    """Clients in threads until stopped: ``fresh`` opens a connection per request, else one kept alive."""

    def __init__(self, port: int, fresh: bool, clients: int = 4):
        self.port, self.fresh = port, fresh
        self.ok, self.failed, self.stop = 0, Counter(), threading.Event()
        self.seconds: list[float] = []  # each answered request's time
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    def client(self) -> None:
        conn = None
        while not self.stop.is_set():
            conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            began = time.monotonic()
            try:
                conn.request("GET", "/", headers={"Connection": "close"} if self.fresh else {})
                response = conn.getresponse()
                response.read()
                outcome = None if response.status == 200 else f"status {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = None
            if self.fresh and conn is not None:
                conn.close()
                conn = None
            with self.lock:
                if outcome is None:
                    self.ok += 1
                    self.seconds.append(time.monotonic() - began)
                else:
                    self.failed[outcome] += 1

    def quantile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


@pytest.mark.parametrize("fresh", [True, False], ids=["new-connections", "keep-alive"])
def test_graceful_applies_under_load(stack, backends, fresh):
    """New connections lose nothing across graceful restarts (the listening sockets stay
    open; the backlog holds them); a kept-alive idle connection may be closed under a
    client that has just sent on it: never an error status (docs/apache.md#graceful-restart)."""
    with Load(stack.port, fresh) as load:
        wait_until(lambda: load.ok >= 20, 10, "the clients to get answers")
        for i in range(6):
            serve(stack, {"app": pool(backends, ("a", {"weight": 1 + i % 2}), "b")})
        served = load.ok
        wait_until(lambda: load.ok >= served + 20, 10, "answers after the last graceful")
    print(f"\napache graceful x6, {'new connections' if fresh else 'keep-alive'}: "
          f"{load.ok} answered, failures {dict(load.failed)}, p50 {load.quantile(0.5) * 1000:.0f} ms, "
          f"p99 {load.quantile(0.99) * 1000:.0f} ms, max {load.quantile(1) * 1000:.0f} ms (on a loaded machine)")
    if fresh:
        assert not load.failed, load.failed
    else:
        assert not [f for f in load.failed if f.startswith("status")], load.failed


def included_stack(tmp_path, backends) -> Stack:
    """The include layout: lbctl writes conf/sites-enabled/lbctl.conf, included by the
    operator's conf/apache2.conf, whose paths come from conf/envvars (as on Debian)."""
    s = Stack(tmp_path, "apache")
    conf = tmp_path / "conf"
    (conf / "sites-enabled").mkdir(parents=True)
    (conf / "envvars").write_text(f"export APACHE_RUN_DIR={tmp_path}/run\nexport APACHE_PID_FILE={tmp_path}/apache2.pid\n"
                                  f"export APACHE_LOG_DIR={tmp_path}\n")
    (conf / "apache2.conf").write_text(
        "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\nServerName localhost\n"
        "User nobody\nGroup nogroup\nDefaultRuntimeDir ${APACHE_RUN_DIR}\nPidFile ${APACHE_PID_FILE}\n"
        "ErrorLog ${APACHE_LOG_DIR}/error.log\nIncludeOptional sites-enabled/*.conf\n")
    s.live = conf / "sites-enabled" / "lbctl.conf"
    s.settings["targets"]["edge"].update(config=str(s.live), main_config=str(conf / "apache2.conf"))
    del s.settings["targets"]["edge"]["run_dir"]  # the operator's (envvars)
    s.write_config()
    return s


def test_the_include_layout_checks_starts_and_restarts_the_operators_tree(tmp_path, backends):
    s = included_stack(tmp_path, backends)
    s.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": s.port, "default_pool": "app"}},
                 "pools": {"app": pool(backends, "a")}})
    command = start.command(config.load(s.config_path).targets["edge"])
    assert s.run("apply").output.endswith(f"when it starts: {command} (docs/running.md)\n")
    open_up(tmp_path)
    subprocess.run(command, shell=True, check=True, timeout=30)  # apache2 -k start: it detaches
    pid_file = tmp_path / "apache2.pid"
    wait_until(lambda: pid_file.exists() and get(s).status == 200, 15, "apache to start from the operator's tree",
               ignore=(OSError,))
    parent = int(pid_file.read_text())
    try:
        assert spread(s, 4) == {"a": 4}
        serve(s, {"app": pool(backends, "b")})
        assert spread(s, 4) == {"b": 4}
        s.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": s.port, "default_pool": "app",
                                           "tls": {"cert": str(tmp_path / "missing.pem")}}},
                     "pools": {"app": pool(backends, "c")}})
        bad = s.run("apply")
        assert bad.exit_code == 1
        assert f"of {s.live}: SSLCertificateFile" in bad.output  # the live name, not the staged copy's
        assert spread(s, 4) == {"b": 4}
    finally:
        os.kill(parent, signal.SIGTERM)
        wait_until(lambda: not alive(parent), 15, "apache to stop")


def test_validate_checks_debians_own_tree(tmp_path, backends):
    """The real /etc/apache2 (copied): apache2.conf, envvars, a2enmod's links, ports.conf."""
    s = Stack(tmp_path, "apache")
    shutil.copytree("/etc/apache2", tmp_path / "apache2", symlinks=True)
    s.live = tmp_path / "apache2" / "sites-enabled" / "lbctl.conf"
    s.settings["targets"]["edge"].update(config=str(s.live), main_config=str(tmp_path / "apache2" / "apache2.conf"))
    s.write_config()
    s.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": s.port, "default_pool": "app"}},
                 "pools": {"app": pool(backends, "a", sticky_cookie="SID")}})
    result = s.run("validate")
    assert result.exit_code == 0, result.output
    s.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": s.port, "default_pool": "app",
                                       "tls": {"cert": str(tmp_path / "missing.pem")}}},
                 "pools": {"app": pool(backends, "a")}})
    result = s.run("validate")  # the inventory allows it; apache's own words refuse it
    assert result.exit_code == 1 and f"of {s.live}: SSLCertificateFile" in result.output, result.output


def test_watch_follows_consul_through_balancer_manager(tmp_path):
    """``lbctl watch`` with Consul: instances come (added in a spare slot), fail their
    checks and go, all through balancer-manager: the generation stays (test_apache_runtime.py)."""
    with running_world(tmp_path, kind="apache") as world:
        def generation() -> int:
            return json.loads(world.stack.run("status", "--json").output)[0]["process"]["config_generation"]

        assert world.serves({"a"})
        first = generation()
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 15, "app-b to take traffic")
        world.consul.set_service_health("app-a", "critical")
        wait_until(lambda: world.serves({"b"}), 15, "app-a to be taken out")
        world.consul.remove_service("app-b")
        world.consul.set_service_health("app-a", "passing")
        wait_until(lambda: world.serves({"a"}), 15, "app-b to leave and app-a to come back")
        assert generation() == first
        assert world.logged("through the runtime API, without a reload")


def test_the_check_needs_no_run_directory(tmp_path, backends):
    """``apache2 -t`` refuses a DefaultRuntimeDir that does not exist; ``lbctl validate -t apache``
    without a config (run_dir /run/apache2, maybe never made) checks all the rest, in apache's words."""
    s = Stack(tmp_path, "apache")
    s.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": s.port, "default_pool": "app"}},
                 "pools": {"app": pool(backends, "a")}})
    text = CliRunner().invoke(cli, ["render", "-t", "apache", "-i", str(s.inventory_path)]).output
    conf = tmp_path / "httpd.conf"
    conf.write_text(text.replace("DefaultRuntimeDir /run/apache2", f"DefaultRuntimeDir {tmp_path}/never"))
    apache_binary.check(conf, find_binary("apache2"))
    conf.write_text(conf.read_text() + "NoSuchDirective on\n")
    with pytest.raises(ValidationError) as err:
        apache_binary.check(conf, find_binary("apache2"))
    assert str(err.value).startswith(f"apache rejected {conf}: AH00526: Syntax error on line ")
    assert f" of {conf}: Invalid command 'NoSuchDirective'" in str(err.value)
    assert not (tmp_path / "never").exists()
