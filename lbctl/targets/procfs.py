"""What /proc says about processes: pid files, titles, children, when they started, and
which ones run a given configuration file (to tell "not running" from "running but unreachable"),
and the TCP connections established to given addresses."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def started(pid: int) -> float | None:
    """When ``pid`` started, in seconds since boot; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[19]) / TICKS
    except (OSError, ValueError, IndexError):
        return None


def read_pid(pid_file: str | os.PathLike[str]) -> int | None:
    """The PID in a pid file, or None if it is missing or garbled."""
    try:
        text = Path(pid_file).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def signature(path: str | os.PathLike[str]) -> list | None:
    """Inode, modification time (ns) and size of ``path``: an atomic write changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_mtime_ns, st.st_size]


def modified(path: str | os.PathLike[str]) -> float | None:
    """When ``path`` was last modified, in seconds since boot (the clock of ``started``)."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME) - (time.time() - mtime)


def running_with(name: str, config: str | os.PathLike[str]) -> list[int]:
    """PIDs of processes running ``name`` (the program haproxy, or nginx's master titled
    ``nginx: master process …``) with ``config`` among their arguments."""
    wanted = {str(config), os.path.realpath(config)}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(name) and wanted & set(argv):
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def title(pid: int) -> str | None:
    """A process's title (nginx rewrites argv: ``nginx: worker process``), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())


def children(pid: int) -> list[int]:
    """Live child PIDs of ``pid`` (``/proc/<pid>/task/<pid>/children``, else a /proc scan)."""
    try:
        kids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        if not Path(f"/proc/{pid}").exists():
            return []
        kids = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _ppid(int(d.name)) == pid]
    return [k for k in kids if alive(k)]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


ESTABLISHED = "01"  # a TCP state in /proc/net/tcp (include/net/tcp_states.h)


def established(addresses: set[str], net: Path = Path("/proc/net")) -> set[tuple[str, str]]:
    """The TCP connections established to one of ``addresses`` (IPv4 or IPv6, as
    ``ipaddress`` prints them) in this network namespace: ``(local, remote)`` address:port pairs."""
    found = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            rows = (net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == ESTABLISHED:
                local, remote = (_endpoint(f, family) for f in fields[1:3])
                if local.rsplit(":", 1)[0].strip("[]") in addresses:
                    found.add((local, remote))
    return found


def _endpoint(text: str, family: int) -> str:
    """``0A12C612:1F90`` (the kernel's bytes of each 32-bit word, in host order) as ``198.18.1.10:8080``."""
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    host = socket.inet_ntop(family, raw)
    return f"{host}:{int(port, 16)}" if family == socket.AF_INET else f"[{host}]:{int(port, 16)}"
