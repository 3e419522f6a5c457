"""``lbctl apply``, ``rollback`` and ``status`` against real HAProxy, nginx and Apache,
real backends and real HTTP on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from lbctl import kinds
from lbctl.targets import files
from lbctl_testkit.support import Backend, find_binary, requires_haproxy, requires_nginx, wait_until
from lbctl_testkit.support.apache import requires_apache
from lbctl_testkit.support.stack import Stack

pytestmark = pytest.mark.integration
KINDS = [pytest.param("haproxy", marks=requires_haproxy), pytest.param("nginx", marks=requires_nginx),
         pytest.param("apache", marks=requires_apache)]
RUNTIME = "through the runtime API, without a reload"  # HAProxy's Runtime API, Apache's balancer-managers
RELOADED = {"haproxy": RUNTIME, "nginx": "and nginx reloaded", "apache": RUNTIME}
CHECK = {"haproxy": ["-c", "-q", "-f"], "nginx": ["-t", "-q", "-c"], "apache": ["-t", "-f"]}
TEMPLATE = {"haproxy": "haproxy.cfg.j2", "nginx": "nginx.conf.j2", "apache": "apache.conf.j2"}


@pytest.fixture
def backends():
    with Backend("a") as a, Backend("b") as b, Backend("c") as c:
        yield {"a": a, "b": b, "c": c}


@pytest.fixture(params=KINDS)
def stack(request, tmp_path, backends):
    s = Stack(tmp_path, request.param)
    s.inventory([("a", backends["a"].port)])
    first = s.run("apply")
    assert first.exit_code == 0, first.output
    assert "is not running, so it takes effect when it starts" in first.output
    with s.running():
        yield s


def generation(stack: Stack):
    status = json.loads(stack.run("status", "--json").output)[0]
    return status["process"]["workers"]


def check_passes(stack: Stack) -> None:
    argv = [find_binary(kinds.get(stack.kind).binary), *CHECK[stack.kind], str(stack.live)]
    assert subprocess.run(argv, capture_output=True).returncode == 0


def test_members_come_and_go_with_applies(stack, backends):
    assert stack.spread(10) == {"a": 10}
    stack.inventory([("a", backends["a"].port), ("b", backends["b"].port)])
    result = stack.run("apply")
    assert result.exit_code == 0, result.output
    assert result.output == f"edge: applied {stack.live} {RELOADED[stack.kind]}\n"
    wait_until(lambda: set(stack.spread(20)) == {"a", "b"}, 5, "both members to take traffic")
    stack.inventory([("b", backends["b"].port)])
    assert stack.run("apply").exit_code == 0
    assert stack.spread(20) == {"b": 20}  # the old generation took no new connection
    again = stack.run("apply")
    assert (again.exit_code, again.output) == (0, f"edge: {stack.live} is up to date\n")
    as_json = stack.run("apply", "--json")
    assert json.loads(as_json.output) == {"changed": False, "targets": [
        {"target": "edge", "result": "unchanged", "message": f"edge: {stack.live} is up to date"}]}


def test_reload_failure_rolls_back(stack, backends):
    before = stack.live.read_text()
    workers = generation(stack)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        raw = stack.inventory([("a", backends["a"].port)])
        raw["listeners"]["other"] = {"address": "127.0.0.1", "port": port, "default_pool": "app"}
        stack.write_raw(raw)
        result = stack.run("apply")
    assert result.exit_code == 1
    if stack.kind == "apache":  # it would exit on the graceful: the check refuses the address first
        assert result.output == (f"lbctl: error: apache could not listen on 127.0.0.1:{port} "
                                 "(Address already in use): a graceful restart would stop apache\n")
        assert stack.live.read_text() == before and generation(stack) == workers
        return
    assert result.output.startswith(f"lbctl: error: {stack.kind} reload")
    assert "Address already in use" in result.output
    assert result.output.rstrip().endswith("restored the previous configuration, which is live again")
    assert result.output.count("\n") == 1
    assert stack.live.read_text() == before
    assert stack.spread(10) == {"a": 10}
    assert generation(stack) != workers  # the restored file was reloaded: a fresh generation serves
    status = json.loads(stack.run("status", "--json").output)[0]
    assert status["last_apply"]["result"] == "rolled-back"


def test_failing_probe_rolls_back(stack, backends):
    before = stack.live.read_text()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    with dead:
        stack.inventory([("gone", dead.getsockname()[1])])
        result = stack.run("apply")
    assert result.exit_code == 1
    assert result.output.startswith(f"lbctl: error: probe http://127.0.0.1:{stack.port}/ failed: status ")
    undone = ("undid the runtime change (read back): the previous configuration is live again"
              if RELOADED[stack.kind] == RUNTIME else "restored the previous configuration, which is live again")
    assert undone in result.output
    assert stack.live.read_text() == before
    assert stack.spread(10) == {"a": 10}


@pytest.mark.parametrize("breakage", ["inventory", "template"])
def test_bad_input_touches_nothing(stack, backends, breakage):
    before, workers = stack.live.read_text(), generation(stack)
    backups = sorted((stack.dir / "state" / "edge" / "backups").glob("*"))
    if breakage == "inventory":
        raw = stack.inventory([("a", backends["a"].port)])
        raw["pools"]["app"]["members"][0]["address"] = "127.0.0.1\n    server evil 10.0.0.1:80"
        stack.write_raw(raw)
        expected = "pools.app.members[0].address: must be an IPv4 or IPv6 address"
    else:
        templates = stack.dir / "templates"
        templates.mkdir()
        (templates / TEMPLATE[stack.kind]).write_text("this is not a config;\n")
        stack.settings["templates"] = "templates"
        stack.write_config()
        stack.inventory([("a", backends["a"].port), ("b", backends["b"].port)])
        expected = "rejected"
    result = stack.run("apply", *(["--force"] if breakage == "template" else []))  # the guard sees nothing served
    assert result.exit_code == 1 and expected in result.output and result.output.count("\n") == 1
    assert stack.live.read_text() == before
    assert sorted((stack.dir / "state" / "edge" / "backups").glob("*")) == backups
    assert generation(stack) == workers
    assert not list(stack.dir.glob(".*lbctl-tmp"))


def test_rollback_restores_a_backup(stack, backends):
    first = stack.live.read_text()
    stack.inventory([("b", backends["b"].port)])
    assert stack.run("apply").exit_code == 0
    assert stack.spread(10) == {"b": 10}
    result = stack.run("rollback")
    assert result.exit_code == 0, result.output
    assert "restored backup" in result.output
    assert stack.live.read_text() == first
    assert stack.spread(10) == {"a": 10}
    status = json.loads(stack.run("status", "--json").output)[0]
    second_backup = status["backups"][0]
    assert files.sha256_file(stack.live) == status["sha256"]
    result = stack.run("rollback", "--to", second_backup)
    assert result.exit_code == 0 and stack.spread(10) == {"b": 10}
    unknown = stack.run("rollback", "--to", "nope")
    assert unknown.exit_code == 1 and "unknown backup id 'nope'" in unknown.output


def test_status_reports_the_target(stack, backends):
    stack.inventory([("b", backends["b"].port)])
    stack.run("apply")
    text = stack.run("status")
    assert text.exit_code == 0
    lines = text.output.splitlines()
    assert lines[0] == f"edge ({stack.kind}): {stack.live}"
    assert lines[1] == f"  sha256      {files.sha256_file(stack.live)}"
    assert " applied edge: applied " in lines[2]
    assert lines[3].startswith("  backups     1 (newest ")
    assert lines[4].startswith(f"  process     running, master {stack.process.master_pid}, workers [")


def test_concurrent_applies_serialize(stack, backends):
    backups_before = len(list((stack.dir / "state" / "edge" / "backups").glob("*.json")))
    inventories = []
    for name in ("b", "c"):
        stack.inventory([(name, backends[name].port)])
        inventories.append(stack.dir / f"inventory-{name}.yml")
        stack.inventory_path.rename(inventories[-1])
    one, two = (stack.spawn("apply", "-i", str(path)) for path in inventories)
    outs = [p.communicate(timeout=60) for p in (one, two)]
    assert [p.returncode for p in (one, two)] == [0, 0], outs
    check_passes(stack)
    assert set(stack.spread(10)) <= {"b", "c"} and len(set(stack.spread(10))) == 1
    # each apply backed up what was live when it held the lock: they ran one after the other
    assert len(list((stack.dir / "state" / "edge" / "backups").glob("*.json"))) - backups_before == 2


def test_lock_timeout_is_a_clear_error(stack, backends):
    stack.settings["targets"]["edge"]["lock_timeout"] = "200ms"
    stack.write_config()
    stack.inventory([("b", backends["b"].port)])
    with files.apply_lock(stack.dir / "state" / "edge" / "lock", 1.0):
        result = stack.run("apply")
    assert result.exit_code == 1
    waiting, error = result.output.splitlines()
    held = f", held by pid {os.getpid()} since "
    assert waiting.startswith("lbctl: edge: waiting up to 0.2s for another lbctl's apply to finish (lock ")
    assert held in waiting
    assert error.startswith("lbctl: error: another lbctl is applying to edge (lock ") and held in error
    assert stack.spread(5) == {"a": 5}


@pytest.mark.parametrize("point", ["checked", "swapped", "reloaded"])
def test_a_crash_leaves_a_valid_config_and_the_next_run_finishes(stack, backends, point):
    # haproxy makes a member change through the runtime API (no reload): "reloaded" needs another balance
    stack.inventory([("b", backends["b"].port)], **({"balance": "leastconn"} if point == "reloaded" else {}))
    crashed = stack.spawn("apply", env={"LBCTL_FAULT": point})
    crashed.communicate(timeout=60)
    assert crashed.returncode == -9
    check_passes(stack)
    assert not list(stack.dir.glob(".*lbctl-tmp"))
    nxt = stack.run("apply")
    assert nxt.exit_code == 0, nxt.output
    assert stack.spread(10) == {"b": 10}
