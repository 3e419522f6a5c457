"""Truth about what runs, end to end: a process lbctl cannot reach is an error, and a
file the running process has not loaded is drift that ``plan`` shows and ``apply``
and ``lbctl reload`` repair.  Real HAProxy and nginx, real backends."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lbctl import drift
from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.targets.haproxy import server_drift
from lbctl.targets import procfs
from lbctl.targets.haproxy.ctl import show_servers_state, socket_command
from tests.helpers import needs
from lbctl_testkit.support import Backend, requires_haproxy, requires_nginx, wait_until
from lbctl_testkit.support.apache import requires_apache
from lbctl_testkit.support.stack import Stack

pytestmark = pytest.mark.integration
KINDS = [pytest.param("haproxy", marks=requires_haproxy), pytest.param("nginx", marks=requires_nginx),
         pytest.param("apache", marks=requires_apache)]


@pytest.fixture
def backends():
    with Backend("a") as a, Backend("b") as b:
        yield {"a": a, "b": b}


@pytest.fixture(params=KINDS)
def stack(request, tmp_path, backends):
    s = Stack(tmp_path, request.param)
    s.inventory([("a", backends["a"].port)])
    assert s.run("apply").exit_code == 0
    with s.running():
        yield s


def misdirect(stack: Stack) -> str:
    """Point lbctl.yml at the wrong master socket (HAProxy) or pid file (nginx); the key's name."""
    key = "master_socket" if stack.kind == "haproxy" else "pid_file"
    stack.settings["targets"]["edge"][key] = str(stack.dir / "wrong")
    stack.write_config()
    return key


def test_a_running_process_on_the_wrong_socket_is_an_error(stack, backends):
    before = stack.live.read_text()
    key = misdirect(stack)
    stack.inventory([("a", backends["a"].port), ("b", backends["b"].port)])
    result = stack.run("apply")
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"lbctl: error: edge: {stack.kind} is running (")
    assert f"{key} {stack.dir / 'wrong'}" in result.output
    assert "not running" not in result.output
    assert stack.live.read_text() == before  # nothing written ...
    assert stack.spread(12) == {"a": 12}  # ... and nothing changed live (no runtime API change either)
    status = stack.run("status")
    assert status.exit_code == 1
    assert "  process     unreachable: edge: " in status.output
    assert stack.run("plan").exit_code == 1


def settled(stack: Stack) -> None:
    """Wait until the newest process of the load balancer started longer ago than drift
    can tell apart (``drift.MARGIN`` plus a clock tick): a file written sooner is not
    known to be newer than what it loaded (configuration.md), and a fast plan gets there."""
    pid = stack.process.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    newest = max(t for t in map(procfs.started, [pid, *map(int, children)]) if t is not None)
    wait_until(lambda: time.clock_gettime(time.CLOCK_BOOTTIME) > newest + drift.MARGIN + 0.02, 5,
               "the process start to be told apart from a file written now")


def test_a_file_the_process_has_not_loaded_is_drift_that_apply_repairs(stack, backends):
    assert stack.run("plan").exit_code == 0
    settled(stack)
    stack.inventory([("b", backends["b"].port)])
    rendered = stack.run("render", "-o", str(stack.live))  # the file changes, the process is not told
    assert rendered.exit_code == 0
    plan = stack.run("plan")
    assert plan.exit_code == 2, plan.output
    assert f"{stack.live}: no changes\n" in plan.output
    assert f"edge: drift: {stack.live} is ahead of the running {stack.kind}" in plan.output
    assert f"edge: drift: {stack.live} was changed outside lbctl since the last apply" in plan.output
    status = stack.run("status")
    assert f"  drift       {stack.live} is ahead of the running {stack.kind}" in status.output
    assert stack.spread(10) == {"a": 10}
    result = stack.run("apply")
    assert (result.exit_code, result.output) == (
        0, f"edge: reloaded {stack.live}, which the running {stack.kind} had not loaded\n")
    assert stack.spread(10) == {"b": 10}
    again = stack.run("plan")
    assert (again.exit_code, again.output) == (0, f"{stack.live}: no changes\n")
    assert json.loads(stack.run("status", "--json").output)[0]["drift"] == []


def test_reload_makes_the_process_load_the_file(stack, backends):
    assert stack.spread(10) == {"a": 10}  # (a file written within 20 ms of the start would be ambiguous)
    stack.inventory([("b", backends["b"].port)])
    stack.run("render", "-o", str(stack.live))
    result = stack.run("reload", "-t", "edge")
    assert (result.exit_code, result.output) == (
        0, f"edge: reloaded {stack.live}, which the running {stack.kind} had not loaded\n")
    assert stack.spread(10) == {"b": 10}
    stack.live.write_text(stack.live.read_text() + "this is not a directive\n")
    broken = stack.run("reload")
    assert broken.exit_code == 1 and broken.output.startswith("lbctl: error: ")
    assert stack.spread(10) == {"b": 10}


def test_after_the_socket_is_fixed_apply_brings_the_change_live(stack, backends):
    target = stack.settings["targets"]["edge"]
    key = "master_socket" if stack.kind == "haproxy" else "pid_file"
    right = target.get(key, str(stack.dir / "master.sock"))
    misdirect(stack)
    stack.inventory([("a", backends["a"].port), ("b", backends["b"].port)])
    assert stack.run("apply").exit_code == 1
    target[key] = right
    stack.write_config()
    result = stack.run("apply")
    assert result.exit_code == 0, result.output
    wait_until(lambda: set(stack.spread(20)) == {"a", "b"}, 5, "both members to take traffic")


@pytest.fixture
def haproxy(tmp_path, backends):
    """HAProxy serving pool ``app`` of a and b (servers named after them)."""
    s = Stack(tmp_path, "haproxy")
    s.inventory([("a", backends["a"].port), ("b", backends["b"].port)])
    assert s.run("apply").exit_code == 0
    with s.running():
        yield s


def by_hand(stack: Stack, command: str) -> None:
    """A change made on the running process through the stats socket, as with socat."""
    assert socket_command(stack.dir / "stats.sock", command).strip() in ("", "Server deleted.")


def running_servers(stack: Stack) -> dict:
    """backend/server → (address, port, weight, admin state) as ``show servers state`` says."""
    return {f"{r.backend}/{r.name}": (r.addr, r.port, r.uweight, server_drift.admin(r))
            for r in show_servers_state(stack.dir / "stats.sock")}


def file_servers(stack: Stack) -> dict:
    return {f"{s.backend}/{s.name}": (s.address, s.port, s.weight, "maint" if s.disabled else "enabled")
            for s in haproxy_cfg.servers(stack.live.read_text()).values()}


@needs(requires_haproxy)
def test_servers_changed_on_the_running_haproxy_are_drift_that_apply_puts_back(haproxy):
    stack = haproxy
    weight = file_servers(stack)["app/a"][2]
    assert running_servers(stack) == file_servers(stack)
    by_hand(stack, "set server app/a weight 7")
    by_hand(stack, "set server app/b state maint")
    plan = stack.run("plan")
    assert plan.exit_code == 2, plan.output
    prefix = f"edge: drift: running haproxy differs from {stack.live}: "
    assert plan.output == (f"{stack.live}: no changes\n"
                           f"{prefix}app/a weight 7 (file {weight})\n"
                           f"{prefix}app/b maint (file enabled)\n")
    status = stack.run("status")
    assert f"  drift       running haproxy differs from {stack.live}: app/a weight 7 (file {weight})\n" in status.output
    assert f"  drift       running haproxy differs from {stack.live}: app/b maint (file enabled)\n" in status.output
    before = stack.run("status", "--json")
    result = stack.run("apply")
    assert (result.exit_code, result.output) == (
        0, f"edge: put back 2 servers that differed from {stack.live} through the runtime API\n")
    assert running_servers(stack) == file_servers(stack)
    assert json.loads(stack.run("status", "--json").output)[0]["process"]["reloads"] == \
        json.loads(before.output)[0]["process"]["reloads"]  # no reload
    wait_until(lambda: set(stack.spread(20)) == {"a", "b"}, 10, "b to serve again")
    again = stack.run("plan")
    assert (again.exit_code, again.output) == (0, f"{stack.live}: no changes\n")


@needs(requires_haproxy)
def test_a_server_deleted_on_the_running_haproxy_is_put_back_by_a_reload(haproxy):
    stack = haproxy
    by_hand(stack, "set server app/b state maint")
    by_hand(stack, "del server app/b")
    by_hand(stack, "set server app/a state drain")
    plan = stack.run("plan")
    assert plan.exit_code == 2, plan.output
    prefix = f"edge: drift: running haproxy differs from {stack.live}: "
    assert f"{prefix}app/a drain (file enabled)\n" in plan.output
    assert f"{prefix}app/b is in the file but not running\n" in plan.output
    result = stack.run("apply")
    assert (result.exit_code, result.output) == (
        0, f"edge: reloaded {stack.live} to put back 2 servers that differed from it\n")
    assert running_servers(stack) == file_servers(stack)  # the drained a's state was not carried over
    again = stack.run("plan")
    assert (again.exit_code, again.output) == (0, f"{stack.live}: no changes\n")


@needs(requires_haproxy)
def test_a_reload_carries_the_unchanged_servers_states_and_the_changed_ones_take_the_file(haproxy, backends):
    stack = haproxy
    stack.settings["targets"]["edge"]["runtime_api"] = False  # every change reloads
    stack.write_config()
    by_hand(stack, "set server app/a weight 7")  # a's line does not change: its runtime state stays
    by_hand(stack, "set server app/b weight 9")  # b's line changes: the file must win
    with Backend("c") as c:
        stack.inventory([("a", backends["a"].port), ("b", c.port)])  # b moves: a kept row would keep its old port
        result = stack.run("apply")
        assert (result.exit_code, result.output) == (0, f"edge: applied {stack.live} and haproxy reloaded\n")
        running, file = running_servers(stack), file_servers(stack)
        assert running["app/a"] == file["app/a"][:2] + (7, "enabled")
        assert running["app/b"] == file["app/b"] and file["app/b"][1] == c.port
