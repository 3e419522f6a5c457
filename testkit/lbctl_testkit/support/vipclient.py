"""A bounded client of a virtual IP, run in the client's namespace:
``python -m lbctl_testkit.support.vipclient URL SECONDS INTERVAL OUT [--keepalive]``.

A GET every INTERVAL seconds for SECONDS seconds (a new connection each, or one
kept alive and made again after a failure; a request whose connection was reset is
sent once more on a new one, as HTTP clients do for a GET, and marked ``retried``), or until a file ``OUT.stop`` appears;
touches ``OUT.started`` at its first answer and keeps in ``OUT.last`` the body of
the last answer (the node that answered); then writes ``OUT``: one JSON list of ``[start, seconds taken, body or null, retried]``
per request (``time.monotonic``, comparable across namespaces on one machine)."""

from __future__ import annotations

import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

# A request fails if it has no answer within this time: above one SYN retransmission (1 s),
# as a client would wait, so that a connection begun as the VIP moved is slow, not lost.
TIMEOUT = 2.0


def get(conn: http.client.HTTPConnection, path: str, keepalive: bool) -> str | None:
    """One GET: the body of a 200, else None.  :raises OSError, HTTPException: no answer."""
    conn.request("GET", path, headers={} if keepalive else {"Connection": "close"})
    answer = conn.getresponse()
    return answer.read().decode().strip() if answer.status == 200 else None


def main(url: str, seconds: float, interval: float, out: Path, keepalive: bool) -> None:
    u = urlsplit(url)
    stop_file, started = Path(f"{out}.stop"), Path(f"{out}.started")
    end, results, conn, last = time.monotonic() + seconds, [], None, None
    while time.monotonic() < end and not stop_file.exists():
        start, retried = time.monotonic(), False
        try:
            conn = conn or http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)
            body = get(conn, u.path or "/", keepalive)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            # A connection the old master held when the VIP moved is reset by the new one.
            # As HTTP clients do for an idempotent request whose connection was closed or
            # reset (RFC 9110, 9.2.2): once more, on a new connection.  Counted apart.
            conn.close()
            conn, retried = None, True
            body = None
        except (OSError, http.client.HTTPException):
            body = None
        if retried:
            try:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=TIMEOUT)
                body = get(conn, u.path or "/", keepalive)
            except (OSError, http.client.HTTPException):
                body = None
        if body is None or not keepalive:
            conn.close() if conn is not None else None
            conn = None
        results.append([start, time.monotonic() - start, body, retried])
        if body is not None and not started.exists():
            started.touch()
        if body is not None and body != last:  # who answers now: the test waits on it
            Path(f"{out}.tmp").write_text(body)
            Path(f"{out}.tmp").replace(f"{out}.last")
            last = body
        time.sleep(max(0.0, interval - (time.monotonic() - start)))
    out.write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), "--keepalive" in sys.argv[5:])
