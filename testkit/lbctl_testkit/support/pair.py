"""Two load-balancer nodes in a ``netns.Lab``: per node a backend, HAProxy, keepalived
and lbctl (its config, state and a wrapper that runs this checkout's lbctl), set up
the way docs/high-availability.md tells an operator to."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import yaml

from lbctl_testkit.support.netns import ADDRESSES, VIP, Lab
from lbctl_testkit.support.procs import find_binary, wait_until

ROOT = Path(__file__).resolve().parents[3]
PORT = 8080
WATCH_PORT = 9100  # each node's lbctl watch: /metrics and /vrrp/vip on its own address
BACKEND = ("import http.server,sys\n"
           "class H(http.server.BaseHTTPRequestHandler):\n"
           "    def do_GET(self):\n"
           "        b=sys.argv[1].encode(); self.send_response(200); self.send_header('Content-Length',str(len(b)))\n"
           "        self.end_headers(); self.wfile.write(b)\n"
           "    def log_message(self,*a): pass\n"
           "http.server.ThreadingHTTPServer(('127.0.0.1',9000),H).serve_forever()\n")


def inventory() -> dict:
    return {"version": 1, "listeners": {"web": {"address": VIP, "port": PORT, "default_pool": "app"}},
            "pools": {"app": {"members": [{"name": "local", "address": "127.0.0.1", "port": 9000}]}}}


class Node:
    """One load balancer of the pair: ``a`` (priority 150) or ``b`` (100)."""

    def __init__(self, lab: Lab, name: str, watch: bool = False, **vrrp) -> None:
        self.lab, self.name, self.watch = lab, name, watch
        self.dir = lab.directory / name  # its files, seen from here; inside its namespace: lab.root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lbctl = lab.root / "lbctl"
        (self.dir / "lbctl").write_text(f"#!/bin/sh\nPYTHONPATH={ROOT}:{ROOT / 'testkit'} exec {sys.executable} -m lbctl \"$@\"\n")
        (self.dir / "lbctl").chmod(stat.S_IRWXU)
        self.config = lab.root / "lbctl.yml"
        self.haproxy = None
        (self.dir / "inventory.yml").write_text(yaml.safe_dump(inventory()))
        self.write_config(**vrrp)

    @property
    def haproxy_cfg(self) -> Path:
        """One name per node: the two HAProxy processes share one /proc, and keepalived tells its
        own by the configuration file in its command line (same content: the configs match)."""
        return self.lab.root / f"haproxy-{self.name}.cfg"

    def write_config(self, **vrrp) -> None:
        d = self.lab.root
        nodes = {n: {"address": ADDRESSES[n], "priority": p} for n, p in (("a", 150), ("b", 100))}
        if self.watch:
            for n, node in nodes.items():
                node["status_url"] = f"http://{ADDRESSES[n]}:{WATCH_PORT}/vrrp/vip"
        keepalived = {"kind": "keepalived", "config": str(d / "keepalived.conf"), "node": self.name,
                      "nodes": nodes, "interface": "eth0", "check_target": "edge", "lbctl": str(self.lbctl),
                      "lbctl_config": str(self.config), "pid_file": str(d / "keepalived.pid"),
                      "drain_file": str(d / "drain"), "auth_pass_file": str(d / "vrrp.pass"),
                      # a loaded test machine: one lbctl check may take seconds, and a timed-out one fails
                      "check_interval": "2s", "script_timeout": "20s", **vrrp}
        (self.dir / "vrrp.pass").write_text("pair-pw\n")
        edge = {"kind": "haproxy", "config": str(self.haproxy_cfg), "binary": find_binary("haproxy"),
                "master_socket": str(d / "master.sock"), "master_log": str(d / "haproxy.log"),
                "stats_socket": str(d / "stats.sock"), "state_file": str(d / "haproxy.state"),
                "drain_map": str(d / "drain.map"), "hard_stop_after": "5s"}
        (self.dir / "lbctl.yml").write_text(yaml.safe_dump({
            "source": {"inventory": "inventory.yml"}, "state_dir": "state", "audit_log": "audit.log",
            "targets": {"edge": edge, "vip": keepalived}}))

    def cli(self, *args: str, check: bool = True, timeout: float = 90):
        return self.lab.run(self.name, [str(self.lbctl), args[0], "-c", str(self.config), *args[1:]], timeout=timeout,
                            check=check)

    def prepare(self) -> None:
        """Its backend, and its files (neither HAProxy nor keepalived runs yet: lbctl writes both).
        Before any node starts HAProxy: lbctl would see the other's, on the same path (one /proc)."""
        self.lab.start(self.name, [sys.executable, "-c", BACKEND, self.name], self.dir / "backend.log")
        self.cli("apply")

    def start(self) -> None:
        self.start_haproxy()
        root = self.lab.root
        self.keepalived = self.lab.start_outside(self.name, [
            find_binary("keepalived"), "-n", "-l", "-D", "--vrrp", "-s", self.lab.ns(self.name),
            "-f", str(root / "keepalived.conf"),
            "-p", str(root / "keepalived.pid"), "-r", str(root / "keepalived-vrrp.pid")],
            self.dir / "keepalived.log")
        if self.watch:
            self.lab.start(self.name, [str(self.lbctl), "watch", "-c", str(self.config), "--listen",
                                       f"{ADDRESSES[self.name]}:{WATCH_PORT}"], self.dir / "watch.log")

    def start_haproxy(self) -> None:
        d = self.lab.root
        self.haproxy = self.lab.start(self.name, [
            find_binary("haproxy"), "-Ws", "-f", str(self.haproxy_cfg), "-S", f"{d / 'master.sock'},level,admin",
            "-p", str(d / "haproxy.pid")], self.dir / "haproxy.log")
        wait_until(lambda: self.cli("check", "-t", "edge", check=False).returncode == 0, 30, f"{self.name}'s haproxy")

    def states(self) -> dict[str, str]:
        found = {}
        for path in (self.dir / "state" / "vip" / "vrrp").glob("*.json"):
            found[path.stem] = json.loads(path.read_text())["state"]
        return found

    def holds(self) -> bool:
        return self.lab.holds(self.name)

    def audit(self) -> list[dict]:
        path = self.dir / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


TAKEOVER = 30  # seconds: a deadline, far above keepalived's master-down interval (about 3.6 s)


def start_pair(lab: Lab, watch: bool = False, **vrrp) -> tuple[Node, Node]:
    """Nodes ``a`` (150) and ``b`` (100), running, ``a`` MASTER."""
    a, b = Node(lab, "a", watch, **vrrp), Node(lab, "b", watch, **vrrp)
    for node in (a, b):
        node.prepare()
    for node in (a, b):
        node.start()
    settle(a, b)
    return a, b


def settle(master: Node, backup: Node) -> None:
    """Wait until keepalived notified ``master`` MASTER and ``backup`` BACKUP, and the VIP is on ``master``."""
    wait_until(lambda: master.states().get("vip") == "MASTER" and backup.states().get("vip") == "BACKUP",
               TAKEOVER, f"{master.name} MASTER and {backup.name} BACKUP (notified)")
    assert master.holds() and not backup.holds()


class Client:
    """``vipclient`` in the client namespace, in the background; ``results()`` stops it."""

    def __init__(self, lab: Lab, name: str, interval: float = 0.02, seconds: float = 60, keepalive: bool = False,
                 retry: bool = False, timeout: float | None = None):
        self.lab, self.out = lab, lab.directory / f"client-{name}.json"
        argv = [sys.executable, "-m", "lbctl_testkit.support.vipclient", f"http://{VIP}:{PORT}/", str(seconds),
                str(interval), str(self.out)] + (["--keepalive"] if keepalive else []) + (["--retry"] if retry else []) \
            + ([f"--timeout={timeout}"] if timeout else [])
        env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'testkit'}"}
        self.proc = lab.start("c", argv, lab.directory / f"client-{name}.log", env=env)
        wait_until(lambda: Path(f"{self.out}.started").exists() or self.proc.poll() is not None, 30,
                   "the client's first answer")

    def reached(self, node: str) -> None:
        """Wait until this client's last answer came from ``node``."""
        last = Path(f"{self.out}.last")
        wait_until(lambda: last.exists() and last.read_text() == node, TAKEOVER, f"the client to be answered by {node}")

    def results(self, stop: bool = True) -> list[list]:
        """Its requests: stopped now, or (``stop=False``) when its time is up."""
        if stop:
            Path(f"{self.out}.stop").touch()
        self.proc.wait(120)
        return json.loads(self.out.read_text())


def gap(results: list[list]) -> float:
    """The longest time the client went without an answer: between the ends of two
    answered requests in a row (failed ones between them), less the usual spacing.
    A connection begun as the VIP moved waits for its SYN to be sent again (1 s on
    Linux), so a client sees that second even when the VIP moved in less."""
    ends = [start + took for start, took, body, *_ in results if body is not None]
    spacing = sorted(b - a for a, b in zip(ends, ends[1:]))
    usual = spacing[len(spacing) // 2] if spacing else 0.0
    return max((b - a - usual for a, b in zip(ends, ends[1:])), default=0.0)


def record(directory: Path, name: str, results: list[list]) -> dict:
    """The figures of one failover (``failed_how``: each failed request's exception), also
    appended to ``$LBCTL_VRRP_FIGURES`` if set (for docs)."""
    failed = [r for r in results if r[2] is None]
    figures = {"event": name, "requests": len(results), "failed": len(failed),
               "failed_reused": sum(r[4] for r in failed),  # on a connection kept alive from the request before
               "failed_how": sorted(f"{r[5]}{' (reused)' if r[4] else ''}" for r in failed),
               "retried": sum(r[3] for r in results),
               "gap_s": round(gap(results), 3), "slowest_s": round(max((r[1] for r in results), default=0), 3), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if os.environ.get("LBCTL_VRRP_FIGURES"):
        with open(os.environ["LBCTL_VRRP_FIGURES"], "a") as f:
            f.write(json.dumps(figures) + "\n")
    return figures
