"""Real HAProxy and nginx processes for integration tests, and polling helpers.

Both run in the foreground as our children, in their own process group, on
loopback ports in a temp dir, and are always stopped (TERM, then KILL of the
whole group) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, TypeVar
from urllib.parse import urlsplit

import pytest

from lbctl.errors import CommandError
from lbctl.targets.nginx import ctl as nginx_ctl
from lbctl.targets.haproxy.ctl import MasterCLI

SKIP_PREFIX = "INTEGRATION SKIPPED"
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
T = TypeVar("T")


def find_binary(name: str) -> str | None:
    """``name`` on PATH or in the sbin dirs (not on a normal user's PATH), else None."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def _requires(name: str, package: str | None = None) -> list[pytest.MarkDecorator]:
    reason = (f"{SKIP_PREFIX}: {name} binary not found on PATH or in {_SBIN}; "
              f"install the Debian '{package or name}' package")
    return [pytest.mark.integration, pytest.mark.skipif(find_binary(name) is None, reason=reason)]


requires_haproxy = _requires("haproxy")
requires_nginx = _requires("nginx")
requires_keepalived = _requires("keepalived")
requires_nft = _requires("nft", "nftables")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.01,
               ignore: tuple[type[BaseException], ...] = ()) -> T:
    """Poll ``predicate`` until it returns something truthy and return that.

    Exceptions in ``ignore`` count as "not yet".

    :raises AssertionError: still falsy after ``timeout`` seconds; names ``what`` and the last value.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except ignore as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class HttpResponse(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: str


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> HttpResponse:
    """GET ``url`` on a fresh connection (``Connection: close``)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("GET", (u.path or "/") + (f"?{u.query}" if u.query else ""),
                     headers={"Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        return HttpResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    finally:
        conn.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen, sig: int, timeout: float = 5.0) -> None:
    """Signal the master, wait for it, then SIGKILL whatever is left in its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _check_alive(proc: subprocess.Popen, name: str, log: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"{name} exited with {proc.returncode} while starting:\n{_tail(log)}")


@dataclass
class HAProxyProcess:
    """A running ``haproxy -W`` master; its stderr goes to ``log``."""

    proc: subprocess.Popen
    config: Path
    directory: Path
    master_socket: Path
    pidfile: Path
    log: Path

    @property
    def master_pid(self) -> int:
        return self.proc.pid

    @property
    def cli(self) -> MasterCLI:
        return MasterCLI(self.master_socket, log_path=self.log)


@contextlib.contextmanager
def running_haproxy(config: str | os.PathLike[str], directory: str | os.PathLike[str],
                    timeout: float = 10.0) -> Iterator[HAProxyProcess]:
    """Run ``haproxy -W -f <config> -S <dir>/master.sock,level,admin -p <dir>/haproxy.pid``.

    Ready once the master CLI lists a worker.
    """
    binary = find_binary("haproxy")
    if binary is None:
        pytest.skip(f"{SKIP_PREFIX}: haproxy binary not found")
    d = Path(directory)
    sock, pidfile, log_path = d / "master.sock", d / "haproxy.pid", d / "haproxy.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [binary, "-W", "-f", str(config), "-S", f"{sock},level,admin", "-p", str(pidfile)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    h = HAProxyProcess(proc, Path(config), d, sock, pidfile, log_path)
    try:
        def ready() -> bool:
            _check_alive(h.proc, "haproxy", h.log)
            return bool(h.cli.show_proc(timeout=1.0).workers)
        wait_until(ready, timeout, "haproxy master CLI to list a worker", ignore=(CommandError,))
        yield h
    finally:
        _stop(h.proc, signal.SIGTERM)


@dataclass
class NginxProcess:
    """A running nginx master (``daemon off``) with its pid file and error log in ``directory``."""

    proc: subprocess.Popen
    config: Path
    directory: Path
    pidfile: Path
    error_log: Path

    @property
    def master_pid(self) -> int:
        return self.proc.pid

    def generation(self) -> nginx_ctl.Generation | None:
        return nginx_ctl.generation(self.pidfile)

    def reload(self, timeout: float = 5.0) -> nginx_ctl.Generation:
        return nginx_ctl.reload(self.pidfile, self.error_log, timeout=timeout)


def nginx_globals(directory: str | os.PathLike[str]) -> str:
    """Main-context directives passed with ``-g`` (so the config file must not set them).

    ``daemon off`` keeps the master our child; the pid file lives in ``directory``.
    As root, ``user root`` lets workers use the 0700 temp dir (the Debian build's
    default worker user is ``nobody``).
    """
    user = " user root;" if os.geteuid() == 0 else ""
    return f"daemon off; pid {Path(directory) / 'nginx.pid'};{user}"


def nginx_temp_paths(directory: str | os.PathLike[str]) -> str:
    """``http {}`` directives keeping nginx's temp dirs out of /var/lib/nginx."""
    d = Path(directory)
    return "".join(f"{kind}_temp_path {d / ('tmp-' + kind)};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


@contextlib.contextmanager
def running_nginx(config: str | os.PathLike[str], directory: str | os.PathLike[str],
                  timeout: float = 10.0, globals_: str | None = None,
                  pidfile: str | os.PathLike[str] | None = None) -> Iterator[NginxProcess]:
    """Run ``nginx -c <config> -p <dir>/ -e <dir>/error.log -g <nginx_globals(dir)>``.

    A config that sets ``pid`` itself (as lbctl's does) passes ``globals_="daemon off;"``
    and its ``pidfile``.

    Ready once the pid file names our process and it has a worker.
    """
    binary = find_binary("nginx")
    if binary is None:
        pytest.skip(f"{SKIP_PREFIX}: nginx binary not found")
    d = Path(directory)
    error_log = d / "error.log"
    with open(d / "nginx.stderr", "ab") as out:
        proc = subprocess.Popen(
            [binary, "-c", str(config), "-p", f"{d}/", "-e", str(error_log), "-g", globals_ or nginx_globals(d)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    n = NginxProcess(proc, Path(config), d, Path(pidfile) if pidfile else d / "nginx.pid", error_log)
    try:
        def ready() -> bool:
            _check_alive(n.proc, "nginx", n.error_log)
            gen = n.generation()
            return gen is not None and gen.master_pid == n.proc.pid and bool(gen.workers)
        wait_until(ready, timeout, "nginx master to write its pid file and start workers")
        yield n
    finally:
        _stop(n.proc, signal.SIGTERM)
