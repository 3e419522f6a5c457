"""Processes for the benchmarks: progress lines, durations, process groups stopped on every exit
(SIGTERM and SIGINT included), the lbctl command line and the checkout's version."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"  # not on a normal user's PATH
T0 = time.monotonic()
_GROUPS: list[subprocess.Popen] = []  # process groups started through ``popen``: stopped by ``main``


def log(msg: str) -> None:
    """One progress line on stderr, with the seconds since the bench started."""
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def duration(text: str) -> float:
    """``10s``, ``500ms``, ``1m`` or a bare number of seconds."""
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def binary(name: str) -> str:
    """The path of ``name`` (haproxy, nginx) on PATH or in the sbin dirs; exits the bench when it is
    not installed.  (Light on purpose: bench/render.py measures its children's peak RSS, which
    starts as this process's own.)"""
    return shutil.which(name) or shutil.which(name, path=SBIN) or sys.exit(f"{name} is not installed")


def popen(argv: list[str], log_path: Path, **kwargs) -> subprocess.Popen:
    """Start ``argv`` in a process group of its own, output appended to ``log_path``; ``main``
    stops the group on every exit of the bench."""
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                                **kwargs)
    _GROUPS.append(proc)
    return proc


def stop_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """SIGCONT (in case it is paused) and signal the leader, wait, then SIGKILL its process group.
    Nothing for one already reaped: its id may belong to another process by now."""
    if proc is None or proc.returncode is not None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def start_profile(pid: int, out: str, rate: int, log_path: Path) -> subprocess.Popen:
    """``py-spy record`` of ``pid`` into ``out`` (raw stacks, ``rate`` Hz); exits the bench without py-spy."""
    spy = shutil.which("py-spy") or sys.exit("--profile needs py-spy (pip install py-spy)")
    return popen([spy, "record", "-p", str(pid), "-o", out, "-f", "raw", "-r", str(rate), "--nonblocking",
                  "--threads"], log_path)


def stop_profile(spy: subprocess.Popen | None) -> None:
    """Let py-spy write its file (SIGINT, up to 60 s), then stop its group."""
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(60)
        stop_group(spy)


def _terminated(signum, frame) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):  # once: the clean-up runs undisturbed
        signal.signal(sig, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main(run) -> None:
    """Run a bench's ``run()``: SIGTERM and SIGINT (even where the shell started it with SIGINT
    ignored, in the background) unwind it, every ``finally`` runs, and the process groups
    started through ``popen`` are stopped whatever happens."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _terminated)
    try:
        run()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while _GROUPS:
            stop_group(_GROUPS.pop(), timeout=5.0)


def keep_or_remove(directory: Path, keep: bool) -> None:
    """A bench's temp dir at its end: kept (and named on stderr) with ``--keep``, else removed."""
    if keep:
        log(f"kept {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


def mtime(path: Path) -> int:
    """``path``'s modification time in ns (0: no such file)."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def loadavg() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def lbctl_argv() -> list[str]:
    """The installed ``lbctl`` script (beside this interpreter first, skipping pyenv's shim), else ``-m lbctl``."""
    here = Path(sys.executable).parent / "lbctl"
    if here.exists():
        return [str(here)]
    found = shutil.which("lbctl")
    return [found] if found else [sys.executable, "-m", "lbctl"]


def code_version() -> str:
    """The lbctl checkout this ran: commit, and "+dirty" when the working tree differs from it."""
    import lbctl

    root = Path(lbctl.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "lbctl"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until it returns something truthy and return that.

    :raises RuntimeError: still falsy after ``timeout`` seconds (names ``what``).
    """
    from lbctl_testkit.support.procs import wait_until

    try:
        return wait_until(predicate, timeout, what, interval)
    except AssertionError as exc:
        raise RuntimeError(str(exc)) from None
