"""Membership changes through HAProxy's Runtime API, without reloads: driven by
Consul (the emulator) through a real ``lbctl watch``, with real HAProxy, real
backends and real traffic.  Reloads are counted on the master CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from lbctl.errors import CommandError
from lbctl.targets.haproxy.ctl import parse_servers_state, show_stat, socket_command
from lbctl_testkit.support import Backend, requires_haproxy, wait_until
from lbctl_testkit.support.stack import Stack
from lbctl_testkit.support.world import running_world

pytestmark = requires_haproxy


def weight_of(world, address_port: str) -> int:
    """uweight of the server at ``address_port``, from ``show servers state``."""
    host, port = address_port.split(":")
    rows = [r for r in parse_servers_state(world.server_state()) if (r.addr, r.port) == (host, int(port))]
    assert len(rows) == 1, rows
    return rows[0].uweight


def test_add_reweight_drain_and_remove_without_a_reload(tmp_path):
    with running_world(tmp_path, slots=4) as world:
        reloads = world.reloads()
        for name in "bc":
            world.register(name)
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "b and c to take traffic")
        c = f"127.0.0.1:{world.backends['c'].port}"
        world.register("c", weights={"Passing": 7, "Warning": 1})
        wait_until(lambda: weight_of(world, c) == 7, 10, "c's new weight to be live")
        world.register("c", weights={"Passing": 7, "Warning": 1}, meta={"lb-state": "drain"})
        wait_until(lambda: world.serves({"a", "b"}), 10, "c to be drained")
        world.consul.remove_service("app-b")
        wait_until(lambda: world.serves({"a"}), 10, "b to be removed")
        assert world.reloads() == reloads
        assert world.logged("through the runtime API, without a reload")
        expected = {"used": {"slot1": f"127.0.0.1:{world.backends['a'].port}", "slot3": c},
                    "free": ["slot2", "slot4", "slot5"]}
        # the file follows the runtime change a moment later: lbctl status reads the file
        wait_until(lambda: json.loads(world.stack.run("status", "--json").output)[0]["slots"]["app"] == expected,
                   10, "lbctl status to show the slots in use")


def test_exhausting_the_slots_costs_one_reload(tmp_path):
    with running_world(tmp_path, slots=2) as world:  # a + 2 spare slots
        reloads = world.reloads()
        for name in "bc":
            world.register(name)
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "b and c in the spare slots")
        assert world.reloads() == reloads
        world.register("d")
        wait_until(lambda: world.serves({"a", "b", "c", "d"}), 10, "d after the pool grew")
        assert world.reloads() == reloads + 1
        assert "server slot6 127.0.0.1:9 weight 1 disabled" in world.stack.live.read_text()


def test_a_structural_change_costs_one_reload(tmp_path):
    with running_world(tmp_path, slots=4) as world:
        reloads = world.reloads()
        world.register("a", meta={"lb-balance": "leastconn"})
        wait_until(lambda: "balance leastconn" in world.stack.live.read_text(), 10, "the new balance algorithm")
        wait_until(lambda: world.reloads() == reloads + 1, 10, "one reload", ignore=(CommandError,))
        assert world.serves({"a"})


def test_a_broken_socket_falls_back_to_a_reload(tmp_path):
    with running_world(tmp_path, slots=4) as world:
        reloads = world.reloads()
        (world.stack.dir / "stats.sock").unlink()  # HAProxy keeps listening on a path nobody can reach
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b through the reload path")
        assert world.reloads() == reloads + 1
        assert world.logged("runtime API failed")
        # The new worker inherits the listening sockets, so the reload does not bring the
        # path back: every change keeps taking the reload path, and stays correct.
        world.register("c")
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "c through the reload path")
        assert world.reloads() == reloads + 2


# -- issue 12: nothing reaches the runtime API unchecked, and a later failure undoes it -----------

@contextlib.contextmanager
def unwritable(directory):
    """``directory`` refuses new files, even to root (``chattr +i``)."""
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def members_live(stack) -> dict:
    """address:port → uweight of every server that takes traffic (not in maintenance)."""
    rows = parse_servers_state(socket_command(stack.dir / "stats.sock", "show servers state app"))
    return {f"{r.addr}:{r.port}": r.uweight for r in rows if not r.maint}


@pytest.fixture
def edge(tmp_path):
    with Backend("a") as a, Backend("b") as b:
        (tmp_path / "edge").mkdir()
        stack = Stack(tmp_path / "edge", "haproxy")
        stack.inventory([("a", a.port)])
        assert stack.run("apply").exit_code == 0
        with stack.running():
            yield stack, a, b


@pytest.mark.parametrize("breakage", ["binary", "config_dir"])
def test_a_failing_check_changes_nothing_live(edge, breakage):
    stack, a, b = edge
    before, live = stack.live.read_text(), members_live(stack)
    stack.inventory([("a", a.port), ("b", b.port)])
    if breakage == "binary":
        stack.settings["targets"]["edge"]["binary"] = str(stack.dir / "no-such-haproxy")
        stack.write_config()
        result = stack.run("apply")
        expected = "no-such-haproxy"
    else:
        with unwritable(stack.dir):
            result = stack.run("apply")
        expected = f"edge: cannot write the candidate beside {stack.live} to check it: Operation not permitted"
    assert result.exit_code == 1, result.output
    assert result.output.startswith("lbctl: error: ") and result.output.count("\n") == 1, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert members_live(stack) == live  # before: b was live through the runtime API while the file said a
    assert stack.live.read_text() == before
    assert stack.spread(10) == {"a": 10}


def test_a_failure_after_the_runtime_change_undoes_it(edge):
    stack, a, b = edge
    before, live = stack.live.read_text(), members_live(stack)
    stack.inventory([("a", a.port), ("b", b.port)])
    backups = stack.dir / "state" / "edge" / "backups"
    backups.mkdir(exist_ok=True)
    with unwritable(backups):  # the backup of the file in place fails after the runtime change
        result = stack.run("apply")
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith(f"lbctl: error: edge: cannot write {backups}/")
    assert result.output.rstrip().endswith("undid the runtime change (read back): "
                                           "the previous configuration is live again")
    assert members_live(stack) == live and stack.live.read_text() == before
    assert stack.spread(10) == {"a": 10}
    again = stack.run("apply")
    assert again.exit_code == 0 and "through the runtime API" in again.output, again.output
    wait_until(lambda: set(stack.spread(12)) == {"a", "b"}, 10, "b to take traffic")


def test_a_crash_after_the_runtime_change_is_finished_by_the_next_run(edge):
    stack, a, b = edge
    stack.inventory([("b", b.port)])
    crashed = stack.spawn("apply", env={"LBCTL_FAULT": "runtime"})
    crashed.communicate(timeout=60)
    assert crashed.returncode == -9
    assert stack.spread(10) == {"b": 10}  # live, but the file still says a
    assert f"127.0.0.1:{a.port} weight 1\n" in stack.live.read_text()
    nxt = stack.run("apply")
    assert nxt.exit_code == 0 and "through the runtime API" in nxt.output, nxt.output
    assert f"127.0.0.1:{b.port} weight 1\n" in stack.live.read_text()
    assert stack.spread(10) == {"b": 10}


def test_a_file_written_after_a_runtime_change_is_not_drift(edge):
    stack, a, b = edge
    stack.inventory([("a", a.port), ("b", b.port)])
    result = stack.run("apply")
    assert result.exit_code == 0 and "through the runtime API" in result.output, result.output
    plan = stack.run("plan")  # the process serves the file it did not reload: not "ahead"
    assert (plan.exit_code, plan.output) == (0, f"{stack.live}: no changes\n")
    again = stack.run("apply")
    assert (again.exit_code, again.output) == (0, f"edge: {stack.live} is up to date\n")  # no reload
    assert json.loads(stack.run("status", "--json").output)[0]["drift"] == []


def test_members_are_servers_named_after_them_added_and_deleted_without_a_reload(tmp_path):
    with running_world(tmp_path) as world:  # the default: no slots
        reloads = world.reloads()
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b to take traffic as a dynamic server")
        names = {r.name: (r.addr, r.port) for r in parse_servers_state(world.server_state())}
        assert names == {"app-a": ("127.0.0.1", world.backends["a"].port),
                         "app-b": ("127.0.0.1", world.backends["b"].port)}  # Consul's Service.ID
        stat = socket_command(world.stack.dir / "stats.sock", "show stat")
        assert "\napp,app-b," in stat and "\napp,app-a," in stat
        wait_until(lambda: f"server app-b 127.0.0.1:{world.backends['b'].port} weight 1" in world.stack.live.read_text(),
                   10, "the file to follow")
        world.consul.remove_service("app-a")
        wait_until(lambda: world.serves({"b"}), 10, "a to be removed")
        # deleted, or (connections still attached) in maintenance until a later change deletes it
        wait_until(lambda: all(r.name == "app-b" or r.maint for r in parse_servers_state(world.server_state())), 10,
                   "app-a to leave the backend")
        world.register("c", weights={"Passing": 3, "Warning": 1})
        wait_until(lambda: world.serves({"b", "c"}), 10, "c to take traffic")
        assert {r.name: r.uweight for r in parse_servers_state(world.server_state()) if not r.maint} == {
            "app-b": 1, "app-c": 3}
        assert world.reloads() == reloads
        world.register("a")  # back under its old name: added again (or its leftover filled again)
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "a to come back")
        assert world.reloads() == reloads


def test_a_file_write_that_fails_in_watch_undoes_the_runtime_change_and_is_retried(tmp_path):
    with running_world(tmp_path, write_delay="3s") as world:
        before = world.stack.live.read_text()
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b to take traffic through the runtime API")
        with unwritable(world.stack.dir):
            wait_until(lambda: world.logged("undid the runtime change (read back): the previous configuration is "
                                            "live again"), 15, "the failed write to undo the runtime change")
            assert world.stack.live.read_text() == before
        wait_until(lambda: f"server app-b 127.0.0.1:{world.backends['b'].port}" in world.stack.live.read_text(), 20,
                   "the retried change to reach the file")
        assert world.serves({"a", "b"})


def test_a_member_with_requests_in_flight_stays_in_maintenance_until_it_can_be_deleted(tmp_path):
    with running_world(tmp_path) as world, ThreadPoolExecutor(4) as pool:
        reloads = world.reloads()
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b to take traffic")

        def rows() -> dict:
            return {r.name: r for r in parse_servers_state(world.server_state())}

        def slow_requests():  # round robin: two of them on app-b, held until released
            for backend in world.backends.values():
                backend.hold()
            return [pool.submit(world.stack.get, "/hold") for _ in range(4)]

        def release() -> None:
            for backend in world.backends.values():
                backend.release()

        def in_flight() -> int:  # app-b's current sessions (scur) in ``show stat``
            return show_stat(world.stack.dir / "stats.sock", ["app"])["app"]["app-b"]["sessions"]

        flying = slow_requests()
        wait_until(in_flight, 10, "a request in flight on app-b")
        world.consul.remove_service("app-b")
        wait_until(lambda: world.serves({"a"}), 10, "app-b to stop taking traffic")
        assert rows()["app-b"].maint  # HAProxy refused to delete it while a request is attached
        world.register("b")  # back while still there: filled again, not added twice
        wait_until(lambda: world.serves({"a", "b"}), 10, "app-b to take traffic again")
        release()
        assert [f.result().status for f in flying] == [200] * 4
        flying = slow_requests()
        wait_until(in_flight, 10, "a request in flight on app-b")
        world.consul.remove_service("app-b")
        wait_until(lambda: world.serves({"a"}), 10, "app-b to stop taking traffic")
        assert rows()["app-b"].maint
        release()
        assert [f.result().status for f in flying] == [200] * 4
        world.register("c")  # the next change deletes it again, now that nothing is attached
        wait_until(lambda: "app-b" not in rows() and world.serves({"a", "c"}), 10, "app-b deleted, app-c added")
        assert world.reloads() == reloads


def test_a_runtime_change_that_fails_its_verification_in_watch_is_undone_and_retried(tmp_path):
    probe = Backend("probe").__enter__()
    port = probe.port
    try:
        with running_world(tmp_path, probes=[{"url": probe.url}]) as world:
            before, reloads = world.stack.live.read_text(), world.reloads()
            probe.close()  # the probe stops answering: the next change cannot verify
            world.register("b")
            wait_until(lambda: world.logged("undid the runtime change (read back): the previous configuration is "
                                            "live again"), 20, "the failed verification to undo the runtime change")
            assert world.logged(f"probe {probe.url} failed")
            wait_until(lambda: world.serves({"a"}), 10, "a alone to serve again")
            assert world.stack.live.read_text() == before  # never written
            probe = Backend("probe", port=port).__enter__()
            wait_until(lambda: f"server app-b 127.0.0.1:{world.backends['b'].port}" in world.stack.live.read_text(),
                       20, "the retried change to verify and reach the file")
            assert world.serves({"a", "b"}) and world.reloads() == reloads
    finally:
        probe.close()
