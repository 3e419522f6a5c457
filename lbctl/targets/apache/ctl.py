"""Restarting Apache gracefully and confirming it took (docs/apache.md#graceful-restart).

A graceful restart is SIGUSR1 to the parent (what ``apachectl graceful`` sends): the
parent reads its configuration again and replaces its children, which finish the
requests they are serving first.  If the configuration does not load, the parent
exits: lbctl checks the whole tree first, and that no new ``Listen`` address is
taken.  Confirmation is the parent's configuration generation on the loopback
server-status page going up and a child of the new generation, else (no status
page: the running config predates lbctl's) new children and no error in the log.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import signal
import socket
import time
from dataclasses import dataclass

from lbctl.errors import ReloadError, ValidationError
from lbctl.targets.files import read_from, size
from lbctl.targets.procfs import alive, children, read_pid, title

_POLL = 0.02
GENERATION = re.compile(r"^ParentServerConfigGeneration: (\d+)$", re.M)
UPTIME = re.compile(r"^ServerUptimeSeconds: (\d+)$", re.M)  # since the last (graceful) restart
LISTEN = re.compile(r"^\s*Listen\s+(\S+)", re.M)
ERROR = re.compile(r"\[[a-z_]+:(emerg|alert|crit)\]")


@dataclass(frozen=True)
class Generation:
    """The running Apache: its parent, its children, the configuration generation and the
    seconds since the last restart (None: server-status did not answer)."""

    parent_pid: int
    children: tuple[int, ...]
    config_generation: int | None = None
    uptime: int | None = None


def is_running(pid_file: str | os.PathLike[str]) -> bool:
    """True if the pid file names a live Apache parent (apache2 or httpd)."""
    pid = read_pid(pid_file)
    return pid is not None and alive(pid) and _is_apache(pid)


def _is_apache(pid: int) -> bool:
    program = os.path.basename((title(pid) or "").split(" ", 1)[0])
    return program.startswith(("apache", "httpd"))


def config_generation(manager: str, timeout: float = 1.0) -> int | None:
    """The parent's configuration generation from server-status on ``manager`` (host:port), None if it does not answer."""
    return server_status(manager, timeout)[0]


def server_status(manager: str, timeout: float = 1.0) -> tuple[int | None, int | None]:
    """The configuration generation and the seconds since the last restart, from
    ``/server-status?auto`` on ``manager``; (None, None) if it does not answer."""
    host, _, port = manager.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        conn.request("GET", "/server-status?auto")
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        conn.close()
    found = [p.search(body) if response.status == 200 else None for p in (GENERATION, UPTIME)]
    return tuple(int(m.group(1)) if m else None for m in found)  # type: ignore[return-value]


def generation(pid_file: str | os.PathLike[str], manager: str | None = None) -> Generation | None:
    """The running generation (for ``lbctl status``), or None if Apache is not running."""
    if not is_running(pid_file):
        return None
    parent = read_pid(pid_file)
    assert parent is not None
    return Generation(parent, tuple(children(parent)), *(server_status(manager) if manager else (None, None)))


def log_errors(error_log: str | os.PathLike[str] | None, offset: int) -> list[str]:
    """Lines at emerg, alert or crit written after ``offset``, without their timestamps."""
    if not error_log:
        return []
    text = read_from(error_log, offset)
    return [re.sub(r"^\[[^]]*\] ", "", line.strip()) for line in text.splitlines() if ERROR.search(line)]


def graceful(pid_file: str | os.PathLike[str], manager: str, error_log: str | os.PathLike[str] | None = None,
             timeout: float = 15.0) -> Generation:
    """SIGUSR1 to the parent, then wait until a new generation serves.

    :raises ReloadError: Apache is not running, exited (its configuration did not load: the
        message quotes its error log), or nothing confirmed the restart within ``timeout``.
    """
    parent = read_pid(pid_file)
    if parent is None or not is_running(pid_file):
        raise ReloadError(f"apache is not running (pid file {pid_file})")
    deadline = time.monotonic() + timeout
    before = config_generation(manager)
    old = set(children(parent))
    offset = size(error_log)
    os.kill(parent, signal.SIGUSR1)
    while time.monotonic() < deadline:
        if not alive(parent):
            errors = log_errors(error_log, offset)
            raise ReloadError(f"apache exited during the graceful restart{': ' + errors[0] if errors else ''}")
        new = set(children(parent)) - old
        if new and _confirmed(before, manager, error_log, offset):
            return Generation(parent, tuple(children(parent)), config_generation(manager))
        time.sleep(_POLL)
    raise ReloadError(f"apache graceful restart not confirmed within {timeout:g}s (no new generation)")


def _confirmed(before: int | None, manager: str, error_log, offset: int) -> bool:
    if before is not None:
        now = config_generation(manager)
        return now is not None and now > before
    return not log_errors(error_log, offset)


def listens(text: str | None) -> set[str]:
    """The ``Listen`` addresses of a configuration lbctl rendered."""
    return set(LISTEN.findall(text or ""))


def check_binds(candidate: str, live: str | None) -> None:
    """Refuse a new ``Listen`` address that something else holds: Apache would exit on its
    graceful restart instead of keeping the old configuration (docs/apache.md#graceful-restart).

    :raises ValidationError: naming the address.
    """
    for address in sorted(listens(candidate) - listens(live)):
        host, _, port = address.rpartition(":")
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host.strip("[]") or "0.0.0.0", int(port)))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                    raise ValidationError(f"apache could not listen on {address} ({exc.strerror}): a graceful "
                                          "restart would stop apache") from None
