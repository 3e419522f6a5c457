"""A whole lbctl set-up in a temp dir: lbctl.yml, an inventory, and the load
balancer it drives, on loopback high ports, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import yaml
from click.testing import CliRunner

from lbctl import kinds
from lbctl.cli import cli
from lbctl_testkit.support.apache import apache_options, running_apache
from lbctl_testkit.support.backends import free_port
from lbctl_testkit.support.procs import find_binary, http_get, running_haproxy, running_nginx

ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """lbctl.yml + inventory for one target named ``edge`` of ``kind``."""

    def __init__(self, directory: Path, kind: str, probe_path: str = "/") -> None:
        self.dir = directory
        self.kind = kind
        self.port = free_port()
        self.config_path = directory / "lbctl.yml"
        self.inventory_path = directory / "inventory.yml"
        self.live = directory / {"haproxy": "haproxy.cfg", "apache": "httpd.conf"}.get(kind, "nginx.conf")
        self.process = None
        target = {"kind": kind, "config": str(self.live), "binary": find_binary(kinds.get(kind).binary),
                  "probes": [{"url": f"http://127.0.0.1:{self.port}{probe_path}"}],
                  "lock_timeout": "20s", "reload_timeout": "10s"}
        if kind == "haproxy":
            target.update(master_socket=str(directory / "master.sock"), master_log=str(directory / "haproxy.log"),
                          stats_socket=str(directory / "stats.sock"),
                          state_file=str(directory / "haproxy.state"), hard_stop_after="5s")
        elif kind == "apache":
            target.update(apache_options(directory, free_port()))
        else:
            target.update(pid_file=str(directory / "nginx.pid"), error_log=str(directory / "error.log"),
                          temp_dir=str(directory), worker_processes=1, worker_shutdown_timeout="5s")
            if os.geteuid() == 0:
                target["user"] = "root"  # workers as nobody could not enter pytest's 0700 dirs
        # max_removal 1.0: most tests swap a pool's only member; emptying a pool is still refused
        self.settings = {"source": {"inventory": "inventory.yml"}, "state_dir": "state", "targets": {"edge": target},
                         "guard": {"max_removal": 1.0}}
        self.write_config()

    def use_consul(self, port: int, **consul) -> None:
        """Fill pool ``app`` from Consul service ``app`` (and whatever ``consul`` adds)."""
        self.settings["source"]["consul"] = {"address": f"127.0.0.1:{port}", "services": ["app"], "wait": "5s",
                                             "min_query_interval": "10ms", **consul}
        self.settings["watch"] = {"min_wait": "0s", "max_wait": "1s", "retry_max": "1s"}
        self.write_config()

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.settings))

    def inventory(self, members: list[tuple[str, int]], **pool) -> dict:
        """Write an inventory: one listener on ``self.port``, one pool ``app`` of ``members``."""
        raw = {
            "listeners": {"web": {"address": "127.0.0.1", "port": self.port, "default_pool": "app"}},
            "pools": {"app": {"health": {"type": "http", "path": "/", "interval": "100ms", "rise": 1, "fall": 1},
                              "members": [{"name": n, "address": "127.0.0.1", "port": p} for n, p in members],
                              **pool}},
        }
        self.inventory_path.write_text(yaml.safe_dump(raw))
        return raw

    def write_raw(self, raw: dict) -> None:
        self.inventory_path.write_text(yaml.safe_dump(raw))

    def run(self, *args: str):
        """``lbctl <args> -c lbctl.yml`` through click's CliRunner."""
        return CliRunner().invoke(cli, [*args, "-c", str(self.config_path)])

    def spawn(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        """``lbctl <args>`` as a real process."""
        return subprocess.Popen([sys.executable, "-m", "lbctl", *args, "-c", str(self.config_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})}, cwd=self.dir)

    @contextlib.contextmanager
    def running(self) -> Iterator[object]:
        """Start the load balancer on the config in place (write it first with ``apply``)."""
        if self.kind == "haproxy":
            with running_haproxy(self.live, self.dir) as proc:
                self.process = proc
                yield proc
        elif self.kind == "apache":
            with running_apache(self.live, self.dir, self.settings["targets"]["edge"]["manager"]) as proc:
                self.process = proc
                yield proc
        else:
            with running_nginx(self.live, self.dir, globals_="daemon off;", pidfile=self.dir / "nginx.pid") as proc:
                self.process = proc
                yield proc

    def get(self, path: str = "/"):
        return http_get(f"http://127.0.0.1:{self.port}{path}", timeout=5.0)

    def spread(self, requests: int = 40) -> Counter:
        """Which backends answered ``requests`` fresh-connection GETs."""
        answers = [self.get() for _ in range(requests)]
        return Counter(r.headers.get("x-backend") or f"status {r.status}" for r in answers)
