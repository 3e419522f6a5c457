"""A VRRP pair on one machine: network namespaces joined by a bridge, for
keepalived's integration tests (docs/high-availability.md#how-it-is-tested).

``Lab`` makes namespaces ``<prefix>sw`` (the bridge), ``<prefix>a`` and
``<prefix>b`` (the load balancers) and ``<prefix>c`` (the client), one veth
pair each, only addresses of 198.18.0.0/15 (RFC 2544's benchmarking range), and
removes everything it made when its ``with`` block ends, failed or not.  Needs
root (CAP_NET_ADMIN); without it the tests fail, they do not skip.

Like two machines, both nodes see their own files at the same path, ``root``
(``/etc/lbctl-lab-<prefix>``): ``ip netns exec`` bind-mounts ``/etc/netns/<ns>/X``
over ``/etc/X``, and that is a link to the node's directory under ``directory``.
So both render the same HAProxy configuration from the same source.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "198.18.0"  # /24 of the benchmarking range
VIP = f"{SUBNET}.100"
ADDRESSES = {"a": f"{SUBNET}.11", "b": f"{SUBNET}.12", "c": f"{SUBNET}.50"}


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


@dataclass
class Lab:
    """The namespaces, and the processes started in them (stopped first at the end)."""

    directory: Path
    prefix: str = field(default_factory=lambda: f"lbv{os.getpid() % 100000}")
    made: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)  # made under /etc, removed last first
    procs: list[tuple[subprocess.Popen, object]] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return Path("/etc") / f"lbctl-lab-{self.prefix}"

    def ns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def build(self) -> None:
        self.add_ns("sw")
        ip("link", "add", "br0", "type", "bridge", netns=self.ns("sw"))
        ip("link", "set", "br0", "up", netns=self.ns("sw"))
        for node, address in ADDRESSES.items():
            self.add_ns(node)
            ip("link", "add", f"v{node}", "type", "veth", "peer", "name", "eth0", "netns", self.ns(node),
               netns=self.ns("sw"))
            ip("link", "set", f"v{node}", "master", "br0", "up", netns=self.ns("sw"))
            ip("addr", "add", f"{address}/24", "dev", "eth0", netns=self.ns(node))
            ip("link", "set", "eth0", "up", netns=self.ns(node))
            if node != "c":  # the listeners bind the VIP on both nodes, held or not; a VIP held
                # on lo after a switchover (lbctl vrrp-notify) is not announced by ARP
                self.run(node, ["sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1", "net.ipv4.conf.all.arp_ignore=1",
                                "net.ipv4.conf.all.arp_announce=2"])
                self.own_root(node)

    def own_root(self, node: str) -> None:
        """``root`` in ``node``'s namespace is ``directory/node``."""
        for path in (Path("/etc/netns"), Path("/etc/netns") / self.ns(node), self.root):
            if not path.exists():
                path.mkdir()
                self.paths.append(path)
        (self.directory / node).mkdir(exist_ok=True)
        link = Path("/etc/netns") / self.ns(node) / self.root.name
        link.symlink_to(self.directory / node)
        self.paths.append(link)

    def add_ns(self, node: str) -> None:
        ip("netns", "add", self.ns(node))
        self.made.append(self.ns(node))
        ip("link", "set", "lo", "up", netns=self.ns(node))

    def run(self, node: str, argv: list[str], timeout: float = 60, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(["ip", "netns", "exec", self.ns(node), *argv], capture_output=True, text=True,
                              timeout=timeout, env=env)
        if check and done.returncode != 0:
            raise RuntimeError(f"{node}: {' '.join(argv)} exited {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done

    def start(self, node: str, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        """A process in ``node``'s namespace, in its own process group, stopped at the end."""
        out = open(log, "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(node), *argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        self.procs.append((proc, out))
        return proc

    def start_outside(self, node: str, argv: list[str], log: Path) -> subprocess.Popen:
        """A process in the host's network namespace that sees ``node``'s files at ``root``
        (a mount namespace of its own): keepalived, which must open the kernel's process
        events there (they exist in no other) and enters ``node``'s namespace itself (``-s``)."""
        mount = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        out = open(log, "ab")
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh",
                                 str(self.directory / node), str(self.root), *argv],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((proc, out))
        return proc

    def link(self, node: str, up: bool) -> None:
        """The node's cable: its port on the bridge."""
        ip("link", "set", f"v{node}", "up" if up else "down", netns=self.ns("sw"))

    def holds(self, node: str, address: str = VIP) -> bool:
        return f" {address}/" in ip("-o", "-4", "addr", "show", "dev", "eth0", netns=self.ns(node)).stdout

    def close(self) -> None:
        for proc, out in reversed(self.procs):
            stop(proc)
            out.close()
        self.procs.clear()
        for name in reversed(self.made):
            ip("netns", "del", name, check=False)
        self.made.clear()
        for path in reversed(self.paths):
            with contextlib.suppress(OSError):
                path.unlink() if path.is_symlink() else path.rmdir()
        self.paths.clear()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """``sig`` to the process group, then SIGKILL to what is left of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
