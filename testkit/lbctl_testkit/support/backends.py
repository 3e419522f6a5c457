"""A real HTTP/1.1 backend for tests: every path answers 200 with its name."""

from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says close
    server: "_Server"

    def _answer(self, with_body: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        if url.path == "/slow":
            ms = int(parse_qs(url.query).get("ms", ["0"])[0])
            time.sleep(ms / 1000)  # the feature under test, not a wait for luck
        elif url.path == "/hold":  # until ``Backend.release`` (at most a minute: never hangs a test)
            self.server.gate.wait(60)
        body = self.server.name.encode()
        self.server.count()
        self.send_response(200)
        self.send_header("X-Backend", self.server.name)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(True)

    def do_POST(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, name: str, addr: tuple[str, int]) -> None:
        self.name = name
        self.gate = threading.Event()  # what ``/hold`` waits for
        self.requests = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        super().__init__(addr, _Handler)

    def count(self) -> None:
        with self._lock:
            self.requests += 1

    def process_request(self, request, client_address):  # type: ignore[override]
        with self._lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[override]
        with self._lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        """Clients (health checks, closing load balancers) hang up all the time: stay quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Backend:
    """``with Backend("b1") as b:`` serves http://127.0.0.1:<b.port>/ until the block ends.

    Answers any path with 200, body ``<name>`` and ``X-Backend: <name>``;
    ``/slow?ms=N`` waits N ms first; ``/hold`` waits until ``release()`` (at most 60 s).
    ``requests`` counts answered requests.
    """

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self._server = _Server(name, (host, port))
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"backend-{name}", daemon=True)

    def hold(self) -> None:
        """``/hold`` requests wait from now on."""
        self._server.gate.clear()

    def release(self) -> None:
        """The waiting ``/hold`` requests are answered, and later ones at once."""
        self._server.gate.set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def requests(self) -> int:
        return self._server.requests

    def __enter__(self) -> "Backend":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.close_connections()
        self._server.server_close()
