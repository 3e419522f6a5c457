"""A running ``lbctl watch`` world: the Consul emulator, real backends, a real
HAProxy and a real ``lbctl watch`` process, for end-to-end tests."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl.errors import CommandError
from lbctl.targets.haproxy.ctl import socket_command
from lbctl_testkit.support.backends import Backend
from lbctl_testkit.support.procs import wait_until
from lbctl_testkit.support.stack import Stack


class World:
    def __init__(self, stack: Stack, consul: ConsulEmulator, backends: dict[str, Backend]):
        self.stack, self.consul, self.backends = stack, consul, backends
        self.log = stack.dir / "watch.log"
        self.proc: subprocess.Popen | None = None

    def register(self, name: str, status: str = "passing", **kwargs) -> None:
        self.consul.add_service("app", service_id=f"app-{name}", address="127.0.0.1",
                                port=self.backends[name].port, status=status, **kwargs)

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

    def reloads(self) -> int:
        """How many times the HAProxy master has reloaded (waiting out a reload in progress)."""
        return wait_until(lambda: self.stack.process.cli.show_proc().reloads + 1, 10, "the master CLI",
                          ignore=(CommandError,)) - 1

    def server_state(self, backend: str = "app") -> str:
        return socket_command(self.stack.dir / "stats.sock", f"show servers state {backend}")


@contextlib.contextmanager
def running_world(directory: Path, backends: str = "abcd", guard: dict | None = None,
                  source: dict | None = None, listener: dict | None = None, watch: dict | None = None,
                  kind: str = "haproxy", watch_args: tuple[str, ...] = (), **target) -> Iterator[World]:
    """Instance ``app-a`` registered and applied, the load balancer (HAProxy unless ``kind``)
    and ``lbctl watch`` running (with lbctl.yml's ``guard`` section if given, else the tests'
    lenient one; ``source``: more ``source.consul`` settings; ``listener``: more settings of
    the inventory's listener ``web``; ``watch``: more ``watch`` settings; ``watch_args``: more
    ``lbctl watch`` options, such as ``--listen``)."""
    with contextlib.ExitStack() as stack_:
        consul = stack_.enter_context(ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0))
        servers = {n: stack_.enter_context(Backend(n)) for n in backends}
        stack = Stack(directory, kind)
        stack.settings["targets"]["edge"].update(target)
        if guard is not None:
            stack.settings["guard"] = guard
        raw = stack.inventory([])
        raw["listeners"]["web"].update(listener or {})
        stack.write_raw(raw)
        stack.use_consul(consul.port, **(source or {}))
        stack.settings["watch"].update(watch or {})
        stack.write_config()
        w = World(stack, consul, servers)
        w.register("a")
        assert stack.run("apply").exit_code == 0
        stack_.enter_context(stack.running())
        w.start_watch(*watch_args)
        try:
            wait_until(lambda: w.consul.blocking_queries, 10, "the watcher to block on Consul")
            yield w
        finally:
            if w.proc and w.proc.poll() is None:
                rc = w.stop_watch()
                assert rc == 0, w.log.read_text()[-2000:]
                assert w.logged("lbctl: watch stopped")
