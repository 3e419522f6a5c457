"""``lbctl watch`` end to end: the Consul emulator (driven like a real agent), a
real ``lbctl watch`` process, real HAProxy, real backends, real HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import pytest

from lbctl.emulators.consul import ConsulEmulator
from tests.support import Backend, requires_haproxy, wait_until
from tests.support.stack import Stack

pytestmark = requires_haproxy


class World:
    def __init__(self, stack: Stack, consul: ConsulEmulator, backends: dict[str, Backend]):
        self.stack, self.consul, self.backends = stack, consul, backends
        self.log = stack.dir / "watch.log"
        self.proc: subprocess.Popen | None = None

    def register(self, name: str, status: str = "passing") -> None:
        self.consul.add_service("app", service_id=f"app-{name}", address="127.0.0.1",
                                port=self.backends[name].port, status=status)

    def start_watch(self, *args: str) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "lbctl", "watch", "-c", str(self.stack.config_path), *args],
                                         stdout=log, stderr=log, start_new_session=True)

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()

    def serves(self, names: set[str]) -> bool:
        return set(self.stack.spread(12)) == names

    def stop_watch(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def world(tmp_path):
    with contextlib.ExitStack() as stack_:
        consul = stack_.enter_context(ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0))
        backends = {n: stack_.enter_context(Backend(n)) for n in "abcd"}
        stack = Stack(tmp_path, "haproxy")
        stack.inventory([])
        stack.use_consul(consul.port)
        w = World(stack, consul, backends)
        w.register("a")
        assert stack.run("apply").exit_code == 0
        stack_.enter_context(stack.running())
        w.start_watch()
        try:
            wait_until(lambda: w.logged("watch") or w.consul.blocking_queries, 10, "the watcher to block on Consul")
            yield w
        finally:
            if w.proc and w.proc.poll() is None:
                rc = w.stop_watch()
                assert rc == 0, w.log.read_text()[-2000:]
                assert w.logged("lbctl: watch stopped")


def test_a_new_instance_takes_traffic(world):
    assert world.serves({"a"})
    world.register("b")
    wait_until(lambda: world.serves({"a", "b"}), 10, "app-b to take traffic")


def test_a_failing_check_takes_an_instance_out_and_back(world):
    world.register("b")
    wait_until(lambda: world.serves({"a", "b"}), 10, "app-b to take traffic")
    world.consul.set_service_health("app-a", "critical")
    wait_until(lambda: world.serves({"b"}), 10, "app-a to be taken out")
    assert "server app-a 127.0.0.1:" in world.stack.live.read_text()  # kept, in maintenance
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
    assert world.logged("consul answers app again")


def test_mass_deregistration_is_refused_until_forced(world):
    for name in "bcd":
        world.register(name)
    wait_until(lambda: world.serves({"a", "b", "c", "d"}), 10, "four instances to take traffic")
    for name in "bcd":
        world.consul.remove_service(f"app-{name}")
    wait_until(lambda: world.logged("refusing the change (pass --force to allow it): pool app: 3 of 4 serving "
                                    "members would stop serving, more than max_removal 50%"), 10, "the guard")
    assert world.serves({"a", "b", "c", "d"})
    # SIGHUP re-reads lbctl.yml: allow the removal
    world.stack.settings["watch"]["max_removal"] = 1.0
    world.stack.write_config()
    world.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: world.serves({"a"}), 10, "the removal once the guard allows it")
    assert world.logged("SIGHUP: reading the configuration again")


def test_sigterm_lets_the_watch_stop_cleanly(world):
    assert world.stop_watch() == 0
    assert world.logged("lbctl: watch stopped")
