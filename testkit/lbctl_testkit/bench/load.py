"""Load generators for the benchmarks, each in a child process with a deadline of its own:
a paced one (a new connection per request, counters in shared memory), and the close /
keep-alive / idle keep-alive clients (one retry of a reused connection's failure)."""

from __future__ import annotations

import http.client
import io
import os
import signal
import socket
import threading
import time
from collections import Counter

from lbctl_testkit.bench.procs import HOST, log


def paced_load_main(port: int, paths: list[str], threads: int, rate: float, max_seconds: float, counters,
              stop, errors_file: str) -> None:
    """Until ``stop`` is set, ``max_seconds`` pass or the parent goes: GET through HAProxy,
    a new connection per request, ``rate`` per second over ``threads`` threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    deadline = time.monotonic() + max_seconds
    lock = threading.Lock()
    parent = os.getppid()

    def fail(msg: str) -> None:
        with counters.get_lock():
            counters[1] += 1
        with lock, open(errors_file, "a") as f:
            f.write(f"{time.monotonic():.3f} {msg}\n")

    def worker(n: int) -> None:
        interval = threads / rate
        nxt = time.monotonic() + n * interval / threads
        i = n
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            path = paths[i % len(paths)]
            i += 1
            try:
                with socket.create_connection((HOST, port), timeout=5) as s:
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                status = data.split(b"\r\n", 1)[0]
                if status.startswith(b"HTTP/1.1 200") and data.endswith(b"ok"):
                    with counters.get_lock():
                        counters[0] += 1
                else:
                    fail(f"{path} {status.decode(errors='replace')[:60] or 'empty answer'}")
            except OSError as exc:
                fail(f"{path} {type(exc).__name__}: {exc}")
            nxt += interval
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


class _CountingReader(io.RawIOBase):
    """The socket's own raw reader (which keeps the socket open until the response
    is closed), counting the bytes received on its connection."""

    def __init__(self, sock: socket.socket, conn: "KeepAliveConnection") -> None:
        self._raw, self._conn = sock.makefile("rb", buffering=0), conn

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int | None:
        n = self._raw.readinto(b)
        if n:
            self._conn.received += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _CountingSocket:
    def __init__(self, sock: socket.socket, conn: "KeepAliveConnection") -> None:
        self._sock, self._conn = sock, conn

    def makefile(self, mode: str, *args, **kwargs):
        return io.BufferedReader(_CountingReader(self._sock, self._conn))


class KeepAliveConnection(http.client.HTTPConnection):
    """An HTTPConnection that knows how many response bytes arrived since ``received = 0``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        conn = self

        class Response(http.client.HTTPResponse):
            def __init__(self, sock, *a, **kw) -> None:
                super().__init__(_CountingSocket(sock, conn), *a, **kw)

        self.response_class = Response


RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _kind(exc: BaseException, phase: str) -> str:
    return f"{phase}: {type(exc).__name__}"


def close_client(port: int, stop, deadline: float, budget: list[int], stats: dict, lock: threading.Lock) -> None:
    """A new connection per request, ``Connection: close``."""
    while not stop.is_set() and time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        failure = None
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failure = f"status {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            failure = _kind(exc, "request")
        finally:
            conn.close()
        with lock:
            stats["requests"] += 1
            if failure:
                stats["failed"] += 1
                stats["failures"][failure] += 1


def keepalive_client(port: int, stop, deadline: float, budget: list[int], stats: dict, lock: threading.Lock,
                     pause: float = 0.0, delay: float = 0.0) -> None:
    """Persistent connections; one retry, on a fresh connection, of a request whose
    reused connection failed before any response byte arrived.

    ``pause``: idle seconds between requests (an idle keep-alive client, as a
    browser tab); ``delay``: seconds before the first request.
    """
    conn = KeepAliveConnection(HOST, port, timeout=10)
    stop.wait(delay)
    first = True
    while not stop.is_set() and time.monotonic() < deadline:
        if pause and not first and stop.wait(pause):
            break
        first = False
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        failure, retried = None, False
        for attempt in (0, 1):
            reused = conn.sock is not None  # http.client opens a fresh one when it is None
            conn.received = 0
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()  # a response with Connection: close closes conn.sock itself
                failure = None if resp.status == 200 else f"status {resp.status}"
                break
            except RETRYABLE as exc:
                nothing = conn.received == 0
                conn.close()
                if attempt == 0 and reused and nothing:
                    retried = True
                    with lock:
                        stats["retry_kinds"][type(exc).__name__] += 1
                    continue
                why = "retry failed" if attempt else ("fresh connection" if not reused else "after response bytes")
                failure = _kind(exc, why)
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                failure = _kind(exc, "retry" if attempt else "request")
                break
        with lock:
            stats["requests"] += 1
            stats["retries"] += retried
            if failure:
                stats["failed"] += 1
                stats["failures"][failure] += 1
    conn.close()


def load_main(mode: str, label: str, port: int, clients: int, max_seconds: float, max_requests: int,
              stop, out, pause: float = 0.0) -> None:
    """One load process: ``clients`` threads of ``mode`` until ``stop``, ``max_seconds`` or ``max_requests``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    stats = {"requests": 0, "failed": 0, "retries": 0, "failures": Counter(), "retry_kinds": Counter()}
    lock, budget = threading.Lock(), [max_requests]
    start = time.monotonic()
    deadline = start + max_seconds
    if mode == "close":
        work = [(port, stop, deadline, budget, stats, lock) for _ in range(clients)]
    else:
        work = [(port, stop, deadline, budget, stats, lock, pause, pause * i / clients) for i in range(clients)]
    threads = [threading.Thread(target=close_client if mode == "close" else keepalive_client, args=a, daemon=True)
               for a in work]
    for t in threads:
        t.start()
    next_report = start + 10
    while any(t.is_alive() for t in threads):
        time.sleep(0.1)
        if time.monotonic() >= next_report:
            next_report += 10
            with lock:
                log(f"{label}: {stats['requests']} requests, {stats['failed']} failed, {stats['retries']} retries")
    elapsed = time.monotonic() - start
    out.send({"requests": stats["requests"], "failed": stats["failed"], "retries": stats["retries"],
              "failures": dict(stats["failures"]), "retry_kinds": dict(stats["retry_kinds"]),
              "seconds": round(elapsed, 1),
              "stopped_by": "signal" if stop.is_set() else ("time" if time.monotonic() >= deadline else "count")})
    out.close()
