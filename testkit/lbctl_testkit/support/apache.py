"""A real Apache httpd (Debian's apache2) for integration tests: in the foreground as
our child, in its own process group, on loopback ports in a temp dir, always stopped
(TERM, then KILL of the whole group) when the ``with`` block ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lbctl.targets.apache import ctl as apache_ctl
from lbctl_testkit.support.procs import SKIP_PREFIX, _check_alive, _requires, _stop, find_binary, wait_until

requires_apache = _requires("apache2")


def apache_options(directory: str | os.PathLike[str], manager_port: int) -> dict:
    """The apache keys of lbctl.yml that keep a test's Apache in ``directory``.  As root its
    children run as ``nobody``; the directory must let them in (see ``open_up``)."""
    d = Path(directory)
    return {"pid_file": str(d / "apache2.pid"), "error_log": str(d / "error.log"), "run_dir": str(d / "run"),
            "manager": f"127.0.0.1:{manager_port}", "user": "nobody", "group": "nogroup",
            "threads_per_child": 8, "max_request_workers": 16}


def open_up(directory: str | os.PathLike[str]) -> None:
    """Let Apache's children (``nobody``) through ``directory`` and its parents (pytest's are 0700)."""
    if os.geteuid() != 0:
        return
    for d in [Path(directory), *Path(directory).parents]:
        if d == Path("/tmp") or d == Path("/"):
            break
        d.chmod(d.stat().st_mode | 0o011)


@dataclass
class ApacheProcess:
    proc: subprocess.Popen
    config: Path
    pidfile: Path
    error_log: Path
    manager: str

    @property
    def master_pid(self) -> int:
        """Apache's parent process (``master`` as the other kinds' helpers say)."""
        return self.proc.pid

    def generation(self) -> apache_ctl.Generation | None:
        return apache_ctl.generation(self.pidfile, self.manager)


@contextlib.contextmanager
def running_apache(config: str | os.PathLike[str], directory: str | os.PathLike[str], manager: str,
                   timeout: float = 15.0) -> Iterator[ApacheProcess]:
    """Run ``apache2 -f <config> -DFOREGROUND`` (its PidFile and ErrorLog are the config's:
    ``apache_options``).  Ready once the pid file names it and server-status answers."""
    binary = find_binary("apache2")
    if binary is None:
        pytest.skip(f"{SKIP_PREFIX}: apache2 binary not found")
    d = Path(directory)
    open_up(d)
    with open(d / "apache2.stderr", "ab") as out:
        proc = subprocess.Popen([binary, "-f", str(config), "-DFOREGROUND"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    a = ApacheProcess(proc, Path(config), d / "apache2.pid", d / "error.log", manager)
    try:
        def ready() -> bool:
            _check_alive(a.proc, "apache2", d / "apache2.stderr")
            gen = a.generation()
            return gen is not None and gen.parent_pid == a.master_pid and gen.config_generation is not None
        wait_until(ready, timeout, "apache2 to write its pid file and answer server-status")
        yield a
    finally:
        _stop(a.proc, signal.SIGTERM)
