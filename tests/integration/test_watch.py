"""``lbctl watch`` end to end: the Consul emulator (driven like a real agent), a
real ``lbctl watch`` process, real HAProxy, real backends, real HTTP."""

from __future__ import annotations

import re
import signal

import pytest

from lbctl_testkit.support import requires_haproxy, wait_until
from lbctl_testkit.support.world import running_world

pytestmark = requires_haproxy


@pytest.fixture
def world(tmp_path):
    with running_world(tmp_path) as w:
        yield w


def test_a_new_instance_takes_traffic(world):
    assert world.serves({"a"})
    world.register("b")
    wait_until(lambda: world.serves({"a", "b"}), 10, "app-b to take traffic")


def test_a_failing_check_takes_an_instance_out_and_back(world):
    world.register("b")
    wait_until(lambda: world.serves({"a", "b"}), 10, "app-b to take traffic")
    world.consul.set_service_health("app-a", "critical")
    wait_until(lambda: world.serves({"b"}), 10, "app-a to be taken out")
    kept = f"127.0.0.1:{world.backends['a'].port} weight 1 disabled"  # kept in its slot, in maintenance
    wait_until(lambda: kept in world.stack.live.read_text(), 10, "the file to follow the runtime change")
    world.consul.set_service_health("app-a", "passing")
    wait_until(lambda: world.serves({"a", "b"}), 10, "app-a to come back")


def test_consul_outage_keeps_the_last_config_and_catches_up_after_an_index_reset(world):
    before = world.stack.live.read_text()
    world.consul.outage()
    wait_until(lambda: world.logged("cannot connect; keeping the last good data and retrying"), 10,
               "lbctl to notice the outage")
    assert world.serves({"a"}) and world.stack.live.read_text() == before
    world.register("b")  # a change while lbctl cannot see it, then a restored server
    world.consul.reset_index()
    world.consul.recover()
    wait_until(lambda: world.serves({"a", "b"}), 15, "lbctl to catch up after the outage")
    wait_until(lambda: world.logged("consul answers checks again"), 10, "the end of the outage, logged")


def test_mass_deregistration_is_refused_until_approved(tmp_path):
    with running_world(tmp_path, guard={"max_removal": 0.5}) as world:
        port = world.consul.port
        assert world.logged(f"source: Consul http://127.0.0.1:{port}, services app, health passing")
        assert world.logged(f"target edge: haproxy {world.stack.live}, master CLI {world.stack.dir / 'master.sock'}")
        assert world.logged("guard: max_removal 50%, min_members 0; a refused change waits for: lbctl approve")
        for name in "bcd":
            world.register(name)
        wait_until(lambda: world.serves({"a", "b", "c", "d"}), 10, "four instances to take traffic")
        # the watcher's first rendering may already hold them (its first line then names app-a too)
        wait_until(lambda: re.search(r"\(app: [^)]*\+app-[bcd]", world.log.read_text()),
                   10, "an apply line naming the members added")
        for name in "bcd":
            world.consul.remove_service(f"app-{name}")
        wait_until(lambda: world.logged("edge: refusing the change: pool app: 3 of 4 serving members would stop "
                                        "serving ("), 10, "the guard")
        assert world.logged("to apply it anyway: lbctl approve -t edge")
        assert world.serves({"a", "b", "c", "d"})
        status = world.stack.run("status")
        assert "  refused     " in status.output and "3 of 4 serving members" in status.output
        approved = world.stack.run("approve", "-t", "edge")
        assert approved.exit_code == 0, approved.output
        wait_until(lambda: world.serves({"a"}), 10, "the approved removal")
        wait_until(lambda: world.logged("(app: -app-b, -app-c, -app-d)"), 10, "an apply line naming the removed")
        assert "refused" not in world.stack.run("status").output
        # SIGHUP re-reads lbctl.yml: a guard that allows the next removal
        for name in "bc":
            world.register(name)
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "three instances to take traffic")
        world.stack.settings["guard"]["max_removal"] = 1.0
        world.stack.write_config()
        world.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: world.logged("SIGHUP: reading the configuration again"), 10, "the SIGHUP")
        for name in "bc":
            world.consul.remove_service(f"app-{name}")
        wait_until(lambda: world.serves({"a"}), 10, "the removal once the guard allows it")


def test_hundreds_of_services_on_eight_connections(tmp_path):
    """The agent's connection cap is on; 400 more services are watched through 8 connections."""
    with running_world(tmp_path, source={"max_connections": 8, "filter": "ServiceTags contains \"edge\""}) as world:
        with world.consul.transaction():
            for s in range(400):
                world.consul.add_service(f"svc-{s}", service_id=f"svc-{s}-0", address="127.0.0.2", port=9000,
                                         tags=["edge"])
        wait_until(lambda: "backend svc-399\n" in world.stack.live.read_text(), 60, "400 more backends")
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 20, "a new instance, live")
        world.consul.remove_service("app-a")
        wait_until(lambda: world.serves({"b"}), 20, "a deregistration, live")
        assert world.consul.peak_connections() <= 8 and world.consul.refused() == 0


def test_sigterm_lets_the_watch_stop_cleanly(world):
    assert world.stop_watch() == 0
    assert world.logged("lbctl: watch stopped")


def test_the_file_write_is_coalesced_and_flushed_before_exit_and_for_one_shot_commands(tmp_path):
    with running_world(tmp_path, write_delay="30s") as world:
        before = world.stack.live.read_text()
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b to take traffic through the runtime API")
        assert world.stack.live.read_text() == before  # the file waits for write_delay
        # a one-shot command waits for the apply lock, which the watch keeps until its write
        plan = world.stack.spawn("plan")
        wait_until(lambda: world.logged("applied"), 10, "the watch to log the apply")
        world.register("c")
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "c to take traffic")
        assert world.stop_watch() == 0  # SIGTERM: the watch writes the file before it stops
        out, err = plan.communicate(timeout=30)
        assert (plan.returncode, out) == (0, f"{world.stack.live}: no changes\n"), err  # it saw the written file
        after = world.stack.live.read_text()
        for name in "abc":
            assert f"127.0.0.1:{world.backends[name].port} weight 1\n" in after
        again = world.stack.run("plan")
        assert (again.exit_code, again.output) == (0, f"{world.stack.live}: no changes\n")
