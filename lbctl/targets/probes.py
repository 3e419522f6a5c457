"""HTTP probes that must answer after a change, with fail-fast rules (docs/configuration.md, step 6):
success is ``successes`` good answers in a row; failure is ``failures`` bad ones
in a row, or no success within ``deadline`` seconds."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

from lbctl.errors import VerifyError


def get(url: str, host: str | None, timeout: float) -> int:
    """The status of a GET on a new connection.  :raises OSError: no answer."""
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Host": host} if host else {})
        response = conn.getresponse()
        response.read()
        return response.status
    except http.client.HTTPException as exc:
        raise OSError(str(exc) or type(exc).__name__) from exc
    finally:
        conn.close()


def wait_healthy(probes, successes: int = 5, failures: int = 3, deadline: float = 2.0) -> None:
    """:raises VerifyError: naming the probe and what it answered."""
    for probe in probes:
        good = bad = 0
        end = time.monotonic() + deadline
        last = "no answer"
        while good < successes:
            try:
                status = get(probe.url, probe.host, probe.timeout_ms / 1000)
                ok, last = status == probe.expect_status, f"status {status}"
            except OSError as exc:
                ok, last = False, str(exc.strerror or exc)
            good, bad = (good + 1, 0) if ok else (0, bad + 1)
            if bad >= failures or (good < successes and time.monotonic() >= end):
                raise VerifyError(f"probe {probe.url} failed: {last} (expected {probe.expect_status})")
            if not ok:
                time.sleep(0.02)
