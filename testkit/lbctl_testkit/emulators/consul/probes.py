"""The agent's own health checks: HTTP, TCP and script checks run on their interval.

Like Consul's ``agent/checks/check.go``: the first run waits a random stagger in
``[0, interval)``; intervals under 1 s are raised to 1 s (``MinInterval``); the
timeout defaults to 10 s.  HTTP: 2xx is passing, 429 warning, anything else or an
error critical; the output is ``HTTP GET <url>: <status> Output: <body>`` (4 KB at
most).  TCP: a connection is passing (``TCP connect <addr>: Success``).  Script:
exit 0 passing, 1 warning, other critical, output = stdout+stderr.  Each check runs
in its own daemon thread until ``stop()``; results go to a callback.  No store here.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from typing import Callable

MIN_INTERVAL = 1.0
DEFAULT_TIMEOUT = 10.0
OUTPUT_MAX = 4096
Result = tuple[str, str]  # (status, output)


def http_probe(url: str, *, method: str = "GET", headers: dict | None = None, body: str = "",
               timeout: float = DEFAULT_TIMEOUT, tls_skip_verify: bool = False) -> Result:
    req = urllib.request.Request(url, data=body.encode() or None, method=method or "GET")
    req.add_header("User-Agent", "Consul Health Check")
    req.add_header("Accept", "text/plain, text/*, */*")
    for k, vals in (headers or {}).items():
        for v in vals if isinstance(vals, list) else [vals]:
            req.add_header(str(k), str(v))
    ctx = ssl._create_unverified_context() if tls_skip_verify else None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(req, timeout=timeout) as resp:
            code, reason, text = resp.status, resp.reason, resp.read(OUTPUT_MAX)
    except urllib.error.HTTPError as exc:
        code, reason, text = exc.code, exc.reason, exc.read(OUTPUT_MAX)
    except (OSError, ValueError) as exc:
        return "critical", f'{method or "GET"} "{url}": {_reason(exc)}'
    status = "passing" if 200 <= code < 300 else ("warning" if code == 429 else "critical")
    return status, f"HTTP {method or 'GET'} {url}: {code} {reason} Output: {text.decode(errors='replace')}"


def tcp_probe(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> Result:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        return "critical", f"dial tcp {address}: {_reason(exc)}"
    return "passing", f"TCP connect {address}: Success"


def script_probe(args: list[str], *, timeout: float = 30.0) -> Result:
    try:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "critical", f"Timed out ({timeout:g}s) running check"
    except OSError as exc:
        return "critical", f"Check failed: {exc}"
    out = done.stdout[-OUTPUT_MAX:].decode(errors="replace")
    return {0: "passing", 1: "warning"}.get(done.returncode, "critical"), out


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    exc = inner if isinstance(inner, BaseException) else exc
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "i/o timeout"
    return str(exc)


class ProbeLoop:
    """Run *probe* every *interval* seconds (after a *stagger*) and hand each result to *report*."""

    def __init__(self, probe: Callable[[], Result], interval: float, stagger: float,
                 report: Callable[[str, str], None], name: str) -> None:
        self._probe, self._report = probe, report
        self._interval = max(interval, MIN_INTERVAL)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stagger,), name=f"consul-emu-check-{name}",
                                        daemon=True)
        self._thread.start()

    def _run(self, stagger: float) -> None:
        if self._stop.wait(stagger):
            return
        while True:
            status, output = self._probe()
            if self._stop.is_set():
                return
            self._report(status, output)
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop.set()
