"""Reloading nginx and confirming it took (docs/upstream.md#nginx-reload).

``nginx -s reload`` exits 0 even when the reload fails, so lbctl sends HUP to
the master itself and watches: a new worker PID must appear, every old worker
must be gone or titled ``worker process is shutting down`` (the old generation
keeps accepting for about 100 ms after the new one starts), and the master must
log no ``[emerg]``/``[alert]`` after the offset recorded before the signal.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from lbctl.errors import ReloadError
from lbctl.targets.files import read_from, size
from lbctl.targets.procfs import read_pid

WORKER = "nginx: worker process"
SHUTTING_DOWN = "nginx: worker process is shutting down"
_POLL = 0.01
_QUIET = 0.6  # no log growth for this long = master done (bind retries are 500 ms apart)


@dataclass(frozen=True)
class Generation:
    """The running nginx: master PID, current workers, and old workers still shutting down."""

    master_pid: int
    workers: tuple[int, ...]
    shutting_down: tuple[int, ...] = ()


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


def is_running(pidfile: str | os.PathLike[str]) -> bool:
    """True if the pid file names a live nginx master."""
    pid = read_pid(pidfile)
    return pid is not None and alive(pid) and (title(pid) or "").startswith("nginx: master process")


def generation(pidfile: str | os.PathLike[str]) -> Generation | None:
    """The running generation (for ``lbctl status``), or None if nginx is not running."""
    if not is_running(pidfile):
        return None
    master = read_pid(pidfile)
    assert master is not None
    return _generation(master)


def _generation(master: int) -> Generation:
    titled = [(k, title(k)) for k in children(master)]
    return Generation(master, tuple(k for k, t in titled if t == WORKER),
                      tuple(k for k, t in titled if t == SHUTTING_DOWN))


def log_errors(error_log: str | os.PathLike[str], offset: int, pid: int | None = None) -> list[str]:
    """``[emerg]``/``[alert]`` lines written after ``offset`` (by ``pid`` only, if given).

    Reads from the start if the log shrank (rotated) below ``offset``.
    """
    text = read_from(error_log, offset)
    who = re.compile(rf"\[(emerg|alert)\] {pid}#" if pid else r"\[(emerg|alert)\] \d+#")
    return [line.strip() for line in text.splitlines() if who.search(line)]


def reload(pidfile: str | os.PathLike[str], error_log: str | os.PathLike[str] | None = None,
           timeout: float = 5.0) -> Generation:
    """Send HUP to the nginx master and confirm the new generation took over.

    ``error_log`` is the log the running master writes to (``-e``/``error_log``);
    without it an ``[emerg]`` is only noticed as "no new workers" at the deadline.
    On failure the old generation keeps serving the old config.

    :raises ReloadError: nginx is not running, the master logged ``[emerg]``/``[alert]``
        (the message quotes the first ``[emerg]``), or no confirmation within ``timeout``.
    """
    master = read_pid(pidfile)
    if master is None or not is_running(pidfile):
        raise ReloadError(f"nginx is not running (pid file {pidfile})")
    deadline = time.monotonic() + timeout
    before = set(children(master))
    old_workers = {k for k in before if title(k) in (WORKER, SHUTTING_DOWN)}
    offset = size(error_log)
    os.kill(master, signal.SIGHUP)
    while time.monotonic() < deadline:
        errors = log_errors(error_log, offset, master) if error_log else []
        if errors:
            _settle(master, error_log, deadline)
            errors = log_errors(error_log, offset, master)
            raise ReloadError(f"nginx reload failed, old config still live: {_first(errors)}")
        if not alive(master):
            raise ReloadError(f"nginx master {master} exited during reload")
        gen = _generation(master)
        old_busy = [k for k in old_workers if alive(k) and title(k) not in (SHUTTING_DOWN, None)]
        if set(gen.workers) - before and not old_busy:
            return gen
        time.sleep(_POLL)
    errors = log_errors(error_log, offset, master) if error_log else []
    reason = f": {_first(errors)}" if errors else " (no new worker, old ones still serving)"
    raise ReloadError(f"nginx reload not confirmed within {timeout:g}s{reason}")


def _first(errors: list[str]) -> str:
    """The first ``[emerg]`` line (else the first line), without its timestamp and pid."""
    line = next((e for e in errors if "[emerg]" in e), errors[0])
    return re.sub(r"^.*?\[(emerg|alert)\] \d+#\d+: ", r"[\1] ", line)


def _settle(master: int, error_log: str | os.PathLike[str], deadline: float) -> None:
    """Wait (until ``deadline``) for a failing master to finish, so the next reload starts clean.

    Done = idle in sigsuspend (/proc wchan), or, where wchan says nothing, a log quiet for ``_QUIET`` s.
    """
    seen, quiet_since = size(error_log), time.monotonic()
    while time.monotonic() < deadline and alive(master):
        idle = _idle(master)
        if idle:
            return
        now_size = size(error_log)
        if now_size != seen:
            seen, quiet_since = now_size, time.monotonic()
        elif idle is None and time.monotonic() - quiet_since >= _QUIET:
            return
        time.sleep(_POLL)


def _idle(pid: int) -> bool | None:
    """True if the master sleeps in sigsuspend (its main loop), None if the kernel does not say."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return None
    return None if wchan in ("", "0") else "sigsuspend" in wchan


