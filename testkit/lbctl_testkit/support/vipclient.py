"""A bounded client of a virtual IP, run in the client's namespace:
``python -m lbctl_testkit.support.vipclient URL SECONDS INTERVAL OUT [--keepalive] [--retry] [--timeout=S]``.

A GET every INTERVAL seconds for SECONDS seconds (a new connection each, or one
kept alive and made again after a failure), or until a file ``OUT.stop`` appears;
touches ``OUT.started`` at its first answer and keeps in ``OUT.last`` the body of
the last answer (the node that answered); then writes ``OUT``: one JSON list of
``[start, seconds taken, body or null, retried, reused, error]`` per request (``time.monotonic``,
comparable across namespaces on one machine), whether it went on a connection kept
alive from the previous one, and why it failed (the exception's name) or null.

It does not retry: a request that has no answer is failed.  With ``--retry`` a
request whose connection was reset is sent once more on a new one, as HTTP clients
do for a GET (RFC 9110, 9.2.2), and marked ``retried``."""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

# A request fails if it has no answer within this time (--timeout: a test on a loaded
# machine waits longer, so that only a lost SYN, response or connection fails it).
TIMEOUT = 2.0
# A connection fails if not made within this time: a SYN lost while the VIP had no
# holder is sent again only after 1 s (Linux), and a client that waited for that
# would measure that second, not the failover; a new connection is tried instead.
# A --timeout below it is the connection's too (bench/vrrp.py's probe).
CONNECT_TIMEOUT = 0.25
RESET = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


class Connection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), min(CONNECT_TIMEOUT, self.timeout))
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def get(conn: http.client.HTTPConnection, path: str, keepalive: bool) -> str | None:
    """One GET: the body of a 200, else None.  :raises OSError, HTTPException: no answer."""
    conn.request("GET", path, headers={} if keepalive else {"Connection": "close"})
    answer = conn.getresponse()
    return answer.read().decode().strip() if answer.status == 200 else None


def attempt(conn, url, keepalive: bool, retry: bool, timeout: float):
    """``(connection or None, body or None, retried, why it failed or None)``."""
    u = urlsplit(url)
    try:
        conn = conn or Connection(u.hostname, u.port, timeout=timeout)
        return conn, get(conn, u.path or "/", keepalive), False, None
    except RESET as exc:
        conn.close()
        if not retry:
            return None, None, False, type(exc).__name__
    except (OSError, http.client.HTTPException) as exc:
        conn.close() if conn is not None else None
        return None, None, False, type(exc).__name__
    conn = Connection(u.hostname, u.port, timeout=timeout)
    try:
        return conn, get(conn, u.path or "/", keepalive), True, None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        return None, None, True, type(exc).__name__


def main(url: str, seconds: float, interval: float, out: Path, keepalive: bool, retry: bool,
         timeout: float = TIMEOUT) -> None:
    stop_file, started = Path(f"{out}.stop"), Path(f"{out}.started")
    end, results, conn, last = time.monotonic() + seconds, [], None, None
    while time.monotonic() < end and not stop_file.exists():
        start = time.monotonic()
        reused = conn is not None and conn.sock is not None  # kept alive from the previous request
        conn, body, retried, error = attempt(conn, url, keepalive, retry, timeout)
        if (body is None or not keepalive) and conn is not None:
            conn.close()
            conn = None
        results.append([start, time.monotonic() - start, body, retried, reused, error])
        if body is not None and not started.exists():
            started.touch()
        if body is not None and body != last:  # who answers now: the test waits on it
            Path(f"{out}.tmp").write_text(body)
            Path(f"{out}.tmp").replace(f"{out}.last")
            last = body
        time.sleep(max(0.0, interval - (time.monotonic() - start)))
    out.write_text(json.dumps(results))


if __name__ == "__main__":
    flags = sys.argv[5:]
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), "--keepalive" in flags,
         "--retry" in flags, next((float(f.split("=", 1)[1]) for f in flags if f.startswith("--timeout=")), TIMEOUT))
