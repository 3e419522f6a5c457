"""HAProxy's UNIX-socket CLIs: the master CLI (reload, ``show proc``) and the stats socket.

Measured on 2.6 (see docs/upstream.md#haproxy-master-cli): the master CLI keeps a connection
open until the client half-closes, its ``reload`` answers nothing, and while
the master re-execs connecting fails with ECONNREFUSED/ECONNRESET. A failed
reload still bumps ``reloads`` but sets ``failed: 1`` and keeps the old worker.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import signal
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lbctl.errors import CommandError, ReloadError
from lbctl.targets.files import atomic_write, read_from, size

# Errors seen while the master re-execs (or before it listens): retry them.
_TRANSIENT = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ENOENT, errno.EPIPE, errno.EAGAIN}
_POLL = 0.01


def _exchange(path: str | os.PathLike[str], cmd: str, timeout: float) -> str:
    """Send one command, half-close, read to EOF; raise OSError/TimeoutError as they come."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(os.fspath(path))
        s.sendall(cmd.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no EOF within {timeout:g}s")
            s.settimeout(remaining)
            data = s.recv(65536)
            if not data:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(data)


def socket_command(path: str | os.PathLike[str], cmd: str, timeout: float = 5.0) -> str:
    """Run one CLI command (``;`` may chain several) on a HAProxy socket and return the answer.

    :raises CommandError: the socket cannot be reached or does not answer in time.
    """
    if "\n" in cmd:
        raise CommandError(f"haproxy socket command must be one line: {cmd!r}")
    try:
        return _exchange(path, cmd, timeout)
    except OSError as e:  # TimeoutError included
        reason = e.strerror or str(e) or type(e).__name__
        raise CommandError(f"haproxy socket {path}: {cmd!r} failed: {reason}") from e


@dataclass(frozen=True)
class Proc:
    """One line of ``show proc``."""

    pid: int
    type: str  # master, worker, or a program name
    reloads: int
    uptime: str
    version: str


@dataclass(frozen=True)
class ProcInfo:
    """A parsed ``show proc`` answer from the master CLI."""

    master: Proc
    failed: int  # failed reloads since the last good one (0 when absent)
    workers: tuple[Proc, ...]
    old_workers: tuple[Proc, ...] = field(default=())

    @property
    def master_pid(self) -> int:
        return self.master.pid

    @property
    def reloads(self) -> int:
        return self.master.reloads

    @property
    def worker_pids(self) -> tuple[int, ...]:
        return tuple(w.pid for w in self.workers)


_PROC_LINE = re.compile(r"^(\d+)\s+(\S+)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?\s+(\S+)(?:\s+(\S+))?")


def parse_show_proc(text: str) -> ProcInfo:
    """Parse the master CLI's ``show proc`` (2.6 layout; ``programs`` are ignored).

    :raises CommandError: no master line (not a master CLI answer).
    """
    master, failed, section = None, 0, "master"
    sections: dict[str, list[Proc]] = {"workers": [], "old workers": []}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            if not line.startswith("#<"):
                section = line.lstrip("# ").lower()
            continue
        m = _PROC_LINE.match(line)
        if not m:
            continue
        proc = Proc(int(m[1]), m[2], int(m[3]), m[5], m[6] or "")
        if proc.type == "master" and master is None:
            master, failed = proc, int(m[4] or 0)
        elif section in sections and proc.type == "worker":
            sections[section].append(proc)
    if master is None:
        first = text.strip().splitlines()[0] if text.strip() else "an empty answer"
        raise CommandError(f"unexpected 'show proc' answer from the haproxy master: {first!r}")
    return ProcInfo(master, failed, tuple(sections["workers"]), tuple(sections["old workers"]))


class MasterCLI:
    """The master CLI socket (``haproxy -W -S <sock>,level,admin``).

    ``log_path`` is where the master's stderr goes; reload failures quote its ``[ALERT]`` lines.
    """

    def __init__(self, socket_path: str | os.PathLike[str], log_path: str | os.PathLike[str] | None = None):
        self.socket_path = Path(socket_path)
        self.log_path = Path(log_path) if log_path is not None else None

    def show_proc(self, timeout: float = 5.0) -> ProcInfo:
        """The current ``show proc``.  :raises CommandError: unreachable or garbled."""
        return parse_show_proc(socket_command(self.socket_path, "show proc", timeout))

    def reload(self, timeout: float = 10.0, use_signal: bool = False) -> ProcInfo:
        """Reload (master CLI ``reload``, or SIGUSR2 to the master) and confirm it took.

        Success: ``reloads`` went up, ``failed`` is 0 and every current worker is new.
        A failed bind makes the master retry for about 2 s before giving up.

        :raises ReloadError: the reload failed (the old worker still serves the old
            config) or was not confirmed within ``timeout`` seconds.
        :raises CommandError: the master CLI was unreachable before the reload.
        """
        deadline = time.monotonic() + timeout
        before = self.show_proc(timeout)
        log_offset = size(self.log_path)
        if use_signal:
            os.kill(before.master_pid, signal.SIGUSR2)
        else:
            try:
                _exchange(self.socket_path, "reload", max(0.1, deadline - time.monotonic()))
            except OSError as e:  # the master drops the connection as it re-execs
                if e.errno not in _TRANSIENT:
                    raise ReloadError(f"haproxy reload could not be sent to {self.socket_path}: {e.strerror}") from e
        old_pids = set(before.worker_pids)
        now, last = before, "no answer from the master CLI"
        while time.monotonic() < deadline:
            try:
                now = parse_show_proc(_exchange(self.socket_path, "show proc", max(0.1, deadline - time.monotonic())))
            except OSError as e:  # TimeoutError included: retried until the deadline
                if not isinstance(e, TimeoutError) and e.errno not in _TRANSIENT:
                    raise ReloadError(f"haproxy master CLI {self.socket_path} failed during reload: {e}") from e
                last = f"master CLI: {e.strerror or e}"
                time.sleep(_POLL)
                continue
            if now.reloads > before.reloads:
                if now.failed:
                    raise ReloadError(self._failure(now, log_offset))
                if now.workers and not old_pids & set(now.worker_pids):
                    return now
                last = f"reloads {now.reloads}, workers {list(now.worker_pids)}"
            else:
                last = f"reloads still {now.reloads}"
            time.sleep(_POLL)
        raise ReloadError(f"haproxy reload not confirmed within {timeout:g}s ({last}){self._reason(log_offset)}")

    def _failure(self, now: ProcInfo, log_offset: int) -> str:
        workers = ", ".join(map(str, now.worker_pids)) or "none"
        return f"haproxy reload failed (failed: {now.failed}, still serving: worker {workers}){self._reason(log_offset)}"

    def _reason(self, log_offset: int) -> str:
        lines = alert_lines(self.log_path, log_offset) if self.log_path else []
        return f": {lines[0]}" if lines else ""


_LOG_PREFIX = re.compile(r"^\[(ALERT|WARNING|NOTICE)\]\s+\(\d+\)\s*:\s*")


def alert_lines(log_path: str | os.PathLike[str], offset: int = 0) -> list[str]:
    """``[ALERT]`` and ``Loading failure`` lines written to the master's log after ``offset``, prefix removed."""
    return [_LOG_PREFIX.sub("", line).strip() for line in read_from(log_path, offset).splitlines()
            if "[ALERT]" in line or "Loading failure" in line]


@dataclass(frozen=True)
class ServerState:
    """One row of ``show servers state`` (fields by header name; ``fields`` has them all)."""

    backend: str
    name: str
    addr: str
    port: int
    op_state: int  # 0 stopped, 1 starting, 2 running, 3 stopping
    admin_state: int  # bits: 0x01 forced maint, 0x02 inherited maint, 0x04 config 'disabled', 0x08 forced drain
    uweight: int
    iweight: int
    fields: dict[str, str]

    @property
    def up(self) -> bool:
        return self.op_state == 2

    @property
    def maint(self) -> bool:
        return bool(self.admin_state & 0x03)

    @property
    def drain(self) -> bool:
        return bool(self.admin_state & 0x18)


def parse_servers_state(text: str) -> list[ServerState]:
    """Parse ``show servers state`` (version line ``1``, a ``#`` header, then rows).

    :raises CommandError: not a version-1 state dump (e.g. "Can't find backend.").
    """
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines or lines[0].strip() != "1":
        raise CommandError(f"unexpected 'show servers state' answer: {(lines or [''])[0]!r}")
    header: list[str] = []
    rows = []
    for line in lines[1:]:
        if line.startswith("#"):
            header = line.lstrip("# ").split()
            continue
        values = line.split()
        if not header or len(values) < len(header):
            raise CommandError(f"unexpected 'show servers state' row: {line!r}")
        f = dict(zip(header, values))
        rows.append(ServerState(f["be_name"], f["srv_name"], f["srv_addr"], int(f.get("srv_port", 0)),
                                int(f["srv_op_state"]), int(f["srv_admin_state"]),
                                int(f["srv_uweight"]), int(f["srv_iweight"]), f))
    return rows


def show_servers_state(stats_socket: str | os.PathLike[str], backend: str | None = None,
                       timeout: float = 5.0) -> list[ServerState]:
    """The servers of ``backend`` (or all) from the stats socket.

    :raises CommandError: socket failure, unknown backend or a garbled answer.
    """
    cmd = "show servers state" + (f" {backend}" if backend else "")
    return parse_servers_state(socket_command(stats_socket, cmd, timeout))


def dump_server_state(stats_socket: str | os.PathLike[str], state_file: str | os.PathLike[str],
                      timeout: float = 5.0) -> Path:
    """Write ``show servers state`` to ``state_file`` atomically (for ``server-state-file``).

    :raises CommandError: socket failure or a garbled answer.  :raises ApplyError: write failure.
    """
    text = socket_command(stats_socket, "show servers state", timeout)
    parse_servers_state(text)  # refuse to write something haproxy would not load
    return atomic_write(state_file, text)


STAT_STATES = (("UP", "up"), ("DOWN", "down"), ("MAINT", "maint"), ("DRAIN", "drain"), ("NOLB", "drain"),
               ("no check", "up"))
STAT_COLUMNS = ("scur", "status", "check_status", "check_code", "last_chk")


def stat_state(status: str) -> str:
    """``show stat``'s status (``UP``, ``DOWN 1/2``, ``MAINT (via b/s)``, ``no check`` ...) as up, down, maint, drain."""
    return next((word for prefix, word in STAT_STATES if status.startswith(prefix)), "unknown")


class StatRows(Mapping):
    """One backend's servers from ``show stat``, each row parsed when it is read (a page
    shows a few hundred of 50,000): ``{"live", "status", "check", "sessions"}``.  ``aliases``:
    other names of a server (``ADDR:PORT`` of the member a runtime slot serves)."""

    def __init__(self, columns: tuple[int | None, ...], rows: dict[str, str]) -> None:
        self.columns, self.rows = columns, rows
        self.aliases: dict[str, str] = {}

    def __getitem__(self, name: str) -> dict:
        # csv: a field with a comma or a quote is quoted; last_chk holds a server's own words (an HTTP reason)
        row = next(csv.reader([self.rows[self.aliases.get(name, name)]]))
        scur, status, check, code, last = (row[i] if i is not None and i < len(row) else "" for i in self.columns)
        result = f"{check} {code}".strip()
        return {"live": stat_state(status), "status": status, "check": f"{result}: {last}" if last else result,
                "sessions": int(scur) if scur.isdigit() else None}

    def __contains__(self, name: object) -> bool:
        return name in self.rows or name in self.aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def parse_stat(text: str) -> dict[str, StatRows]:
    """The servers of ``show stat`` (CSV, ``# pxname,svname,...`` header) by backend and
    name; one cheap pass (two fields a line), the rest parsed when read.

    :raises CommandError: no CSV header (an error message instead).
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# pxname,svname,"):
        raise CommandError(f"unexpected 'show stat' answer: {(lines or [''])[0]!r}")
    return stat_rows(lines[0], lines[1:])


def stat_rows(header_line: str, lines: list[str]) -> dict[str, StatRows]:
    header = header_line[2:].split(",")
    columns = tuple(header.index(c) if c in header else None for c in STAT_COLUMNS)
    backends: dict[str, dict[str, str]] = {}
    for line in lines:
        fields = line.split(",", 2)
        if len(fields) == 3 and fields[1] not in ("FRONTEND", "BACKEND"):
            backends.setdefault(fields[0], {})[fields[1]] = line
    return {name: StatRows(columns, rows) for name, rows in backends.items()}


NO_PROXY = "No such proxy."  # HAProxy's answer to ``show stat <backend> ...`` for a backend it does not have
BACKEND_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a pool's name (validate.IDENT): safe in a CLI command
STAT_BATCH = 100  # ``show stat`` commands chained with ';' on one connection


def parse_stats(text: str) -> dict[str, StatRows]:
    """Several ``show stat <backend> 4 -1`` answers one after the other (a header each,
    ``No such proxy.`` for a backend HAProxy does not have).  :raises CommandError: another answer."""
    header, rows = None, []
    for line in text.splitlines():
        if line.startswith("# pxname,svname,"):
            header = header or line
        elif line.strip() and line.strip() != NO_PROXY:
            if "," not in line:
                raise CommandError(f"unexpected 'show stat' answer: {line!r}")
            rows.append(line)
    return stat_rows(header, rows) if header else {}


def show_stat(stats_socket: str | os.PathLike[str], backends: Iterable[str] | None = None,
              timeout: float = 5.0) -> dict[str, StatRows]:
    """The live state of every server (``show stat -1 4 -1``: servers only), or of the servers
    of ``backends`` only (``show stat <backend> 4 -1`` each, ``STAT_BATCH`` to a connection:
    a page of pools costs its servers, not all 50,000).  :raises CommandError: as parse_stat."""
    if backends is None:
        return parse_stat(socket_command(stats_socket, "show stat -1 4 -1", timeout))
    names = [b for b in dict.fromkeys(backends) if BACKEND_NAME.fullmatch(b)]  # never a ';' or a space in a command
    out: dict[str, StatRows] = {}
    for i in range(0, len(names), STAT_BATCH):
        cmd = "; ".join(f"show stat {name} 4 -1" for name in names[i:i + STAT_BATCH])
        out.update(parse_stats(socket_command(stats_socket, cmd, timeout)))
    return out


DRAIN_KEY = "drain"  # what the rendered ``map(drain_map)`` looks up (templates/haproxy.cfg.j2)


def set_drain_map(stats_socket: str, drain_map: str, closing: bool) -> None:
    """Write ``drain_map`` (``drain 1`` while closing, else empty: what a reload or a restart
    reads) and make the running workers match it (``clear map``, ``add map``: Runtime API).

    :raises CommandError: the stats socket does not answer, or refused the commands.
    """
    atomic_write(Path(drain_map), f"{DRAIN_KEY} 1\n" if closing else "")
    commands = [f"clear map {drain_map}"] + ([f"add map {drain_map} {DRAIN_KEY} 1"] if closing else [])
    answer = socket_command(stats_socket, ";".join(commands)).strip()
    if answer:  # both commands say nothing when they succeed
        raise CommandError(f"haproxy socket {stats_socket}: {';'.join(commands)!r} answered {answer!r}")
