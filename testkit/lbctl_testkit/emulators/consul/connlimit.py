"""Consul's per-client connection cap (``limits.http_max_conns_per_client``).

A real agent (``agent/agent.go``, with hashicorp/go-connlimit) counts every open
HTTP connection per client IP, idle keep-alive ones included, from accept to close.
A new connection past the cap gets a canned ``429 Too Many Requests`` at once,
before any request is read, and is closed.  ``ConnLimiter`` does the counting (and
keeps the peaks and refusals for tests and benchmarks); ``refuse()`` writes the
answer.  Thread-safe; no HTTP parsing.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter

DEFAULT_MAX_CONNS_PER_CLIENT = 200  # Consul's default
# go-connlimit's connlimit.go: the body and the raw response it writes.
TOO_MANY_CONNS = "Your IP is issuing too many concurrent connections, please rate limit your calls\n"
_RESPONSE = (f"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
             f"Content-Length: {len(TOO_MANY_CONNS)}\r\nConnection: close\r\n\r\n{TOO_MANY_CONNS}").encode()


def refuse(conn: socket.socket) -> None:
    """Write the canned 429 (10 ms deadline, as Consul sets) and stop reading; the caller closes.

    Request bytes already received are discarded so that the close does not turn
    into a TCP reset before the client reads the 429 (Go's accept hook usually runs
    before the request arrives; Python's accept is slower).
    """
    try:
        conn.settimeout(0.01)
        conn.sendall(_RESPONSE)
        conn.shutdown(socket.SHUT_WR)
        conn.setblocking(False)
        while conn.recv(65536):
            pass
    except OSError:
        pass


class ConnLimiter:
    def __init__(self, cap: int = DEFAULT_MAX_CONNS_PER_CLIENT) -> None:
        self.cap = int(cap)  # 0: no cap (as in Consul)
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, str] = {}  # open connection -> client IP
        self._open: Counter[str] = Counter()
        self._peak: Counter[str] = Counter()
        self._refused = 0

    def admit(self, conn: socket.socket, client: str) -> bool:
        """Count a new connection from *client*; False (and counted as refused) past the cap."""
        with self._lock:
            if self.cap > 0 and self._open[client] >= self.cap:
                self._refused += 1
                return False
            self._conns[conn] = client
            self._open[client] += 1
            self._peak[client] = max(self._peak[client], self._open[client])
            return True

    def release(self, conn: socket.socket) -> None:
        """A connection closed (a no-op for one that was refused)."""
        with self._lock:
            client = self._conns.pop(conn, None)
            if client is not None:
                self._open[client] -= 1
                if not self._open[client]:
                    del self._open[client]

    def sockets(self) -> list[socket.socket]:
        with self._lock:
            return list(self._conns)

    def open(self, client: str | None = None) -> int:
        with self._lock:
            return self._open[client] if client is not None else max(self._open.values(), default=0)

    def peak(self, client: str | None = None) -> int:
        with self._lock:
            return self._peak[client] if client is not None else max(self._peak.values(), default=0)

    def refused(self) -> int:
        with self._lock:
            return self._refused

    def reset(self) -> None:
        with self._lock:
            self._peak = Counter(self._open)
            self._refused = 0
