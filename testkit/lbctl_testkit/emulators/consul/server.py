"""The HTTP layer: a real loopback server, plus fault switches for tests.

``ConsulEmulator`` binds ``ThreadingHTTPServer`` (daemon threads, deep accept queue)
on 127.0.0.1, answers HTTP/1.1 keep-alive like Consul, and delegates to ``api.Api``.
Fault switches are plain thread-safe methods: ``outage()`` closes the listening
socket and every open connection (clients get "connection refused"; in-flight
blocking queries are cut), ``recover()`` listens again on the same port.

Like a real agent at its defaults (``limits.http_max_conns_per_client`` = 200), it
admits at most ``max_conns_per_client`` concurrent connections per client IP and
answers the next one with Consul's canned 429 (``connlimit.py``); the accept hook is
``_Server.verify_request``.  ``connections()``, ``peak_connections()`` and
``refused()`` count what clients did.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from .api import Api
from .connlimit import DEFAULT_MAX_CONNS_PER_CLIENT, TOO_MANY_CONNS, ConnLimiter, refuse
from .core import Aborted
from .proto import Request, Response, accepts_gzip, gzipped, text
from .state import Store

_FAULT_BODIES = {429: TOO_MANY_CONNS, 500: "rpc error making call: emulated failure", 503: "Service Unavailable"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048
    allow_reuse_address = True
    emu: ConsulEmulator

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Runs on the accepting thread, like Consul's ``ConnState`` hook: admit or refuse."""
        if self.emu.limiter.admit(request, client_address[0]):
            return True
        refuse(request)
        return False

    def shutdown_request(self, request: Any) -> None:
        self.emu.limiter.release(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, OSError, Aborted)):
            return  # client went away, or the emulator cut the connection
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid 40 ms stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.emu.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            resp = self.server.emu._serve(self.command, self.path, self.headers, body)
        except Aborted:
            self.close_connection = True
            return
        if accepts_gzip(self.headers.get("Accept-Encoding")):
            resp = gzipped(resp)
            self.server.emu.count_gzipped(urlsplit(self.path).path)
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        self.wfile.write(resp.body)

    do_GET = do_PUT = do_DELETE = do_POST = _handle


class ConsulEmulator:
    """A Consul HTTP API emulator on loopback.  ``with ConsulEmulator() as c: c.url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, node_name: str = "node-a",
                 node_address: str = "127.0.0.1", datacenter: str = "dc1",
                 acl_tokens: Iterable[str] | Mapping[str, str] | None = None,
                 default_wait: float = 300.0, max_wait: float = 600.0, jitter: bool = True,
                 streaming: bool = False, strict_kv_keys: bool = True,
                 check_update_interval: float = 300.0, clock: Callable[[], float] | None = None,
                 seed: int | None = None, consul_service: bool = True, verbose: bool = False,
                 max_conns_per_client: int = DEFAULT_MAX_CONNS_PER_CLIENT,
                 enable_script_checks: bool = False) -> None:
        self.host = host
        self.port = port
        self.store = Store(node_name=node_name, node_address=node_address, datacenter=datacenter,
                           clock=clock, seed=seed, check_update_interval=check_update_interval,
                           consul_service=consul_service, enable_script_checks=enable_script_checks)
        self.api = Api(self.store, self)
        if acl_tokens is None:
            self.acl: dict[str, str] | None = None
        elif isinstance(acl_tokens, Mapping):
            self.acl = {str(k): str(v) for k, v in acl_tokens.items()}
        else:
            self.acl = {str(t): "write" for t in acl_tokens}
        self.default_wait, self.max_wait, self.jitter = default_wait, max_wait, jitter
        self.streaming, self.strict_kv_keys, self.verbose = streaming, strict_kv_keys, verbose
        self.leader = True
        self.last_contact_ms = 0
        self.hidden_nodes: frozenset[str] = frozenset()
        self.requests: Counter[str] = Counter()
        self.gzipped: Counter[str] = Counter()  # answers sent gzip-compressed (the client asked), by path
        self._ctl = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.limiter = ConnLimiter(max_conns_per_client)
        self._gen = 0
        self._cut = threading.Event()
        self._latency = 0.0
        self._error_rate = (0.0, 500, "")
        self._fail_next: list[tuple[int, str, str | None]] = []  # (status, path prefix, body)

    # ------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ConsulEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ConsulEmulator:
        """Listen (``port=0`` picks a free port, kept across ``outage``/``recover``)."""
        with self._ctl:
            if self._httpd is None:
                self._listen()
            self.store.start_timers()
        return self

    def stop(self) -> None:
        self._down()
        self.store.stop_timers()

    def _listen(self) -> None:
        last: OSError | None = None
        for _ in range(100):  # the old socket may take a moment to go away
            try:
                httpd = _Server((self.host, self.port), _Handler)
                break
            except OSError as exc:
                last = exc
                time.sleep(0.02)
        else:
            raise RuntimeError(f"cannot listen on {self.host}:{self.port}: {last}")
        httpd.emu = self
        self.port = httpd.server_address[1]
        self._cut = threading.Event()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"consul-emu-{self.port}", daemon=True)
        self._thread.start()

    def _down(self) -> None:
        with self._ctl:
            httpd, self._httpd = self._httpd, None
            if httpd is None:
                return
            self._gen += 1
            self._cut.set()
        self.store.wake_all(abandon=False)  # parked queries see the new generation and abort
        httpd.shutdown()
        httpd.server_close()
        with self._ctl:
            conns = self.limiter.sockets()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ------------------------------------------------------------ fault switches
    def outage(self) -> None:
        """Stop answering: close the listener (connection refused) and cut every connection."""
        self._down()

    def recover(self) -> None:
        """Listen again on the same port after ``outage()``."""
        with self._ctl:
            if self._httpd is None:
                self._listen()

    @property
    def is_up(self) -> bool:
        return self._httpd is not None

    def set_latency(self, seconds: float) -> None:
        """Delay every answer by *seconds* (0 turns it off)."""
        self._latency = max(0.0, float(seconds))

    def set_error_rate(self, rate: float, status: int = 500, path_prefix: str = "") -> None:
        """Answer a random fraction *rate* of requests (under *path_prefix*) with *status*."""
        self._error_rate = (float(rate), int(status), path_prefix)

    def fail_next(self, n: int = 1, status: int = 500, path_prefix: str = "", body: str | None = None) -> None:
        """Answer the next *n* requests (under *path_prefix*) with *status*.

        *body* replaces the usual text; ``{token}`` in it becomes the request's ACL token,
        as a proxy or a server that echoes the request would show it.
        """
        with self._ctl:
            self._fail_next.extend([(int(status), path_prefix, body)] * n)

    def drop_next(self, n: int = 1, path_prefix: str = "") -> None:
        """Close the connection of the next *n* requests (under *path_prefix*) without answering."""
        self.fail_next(n, status=0, path_prefix=path_prefix)

    def reset_index(self, to: int = 1) -> None:
        """Simulate a restored/restarted server: every index drops to *to*, data stays.

        Parked blocking queries return at once with the lower index.
        """
        self.store.reset_indexes(to)

    def wake_all(self) -> None:
        """Spurious wake-up: every parked blocking query returns now with its same index."""
        self.store.wake_all(abandon=True)

    def set_leader(self, known: bool) -> None:
        """Without a leader, default/consistent reads and writes give 500 ``No cluster leader``."""
        self.leader = bool(known)

    def set_last_contact(self, ms: int) -> None:
        """Report a lagging follower: ``X-Consul-Lastcontact`` on stale reads."""
        self.last_contact_ms = int(ms)

    def hide_nodes(self, *nodes: str) -> None:
        """Silently drop rows of these nodes from list reads, like ACL filtering."""
        self.hidden_nodes = frozenset(nodes)

    # ------------------------------------------------------------ counters
    @property
    def max_conns_per_client(self) -> int:
        return self.limiter.cap

    def set_max_conns_per_client(self, n: int) -> None:
        """Change the cap at run time (0: none); open connections above it stay open, as in Consul."""
        self.limiter.cap = int(n)

    def connections(self, client: str | None = None) -> int:
        """Connections open right now from *client* (an IP), or the most from any one client."""
        return self.limiter.open(client)

    def peak_connections(self, client: str | None = None) -> int:
        """Most connections ever open at once from *client*, or from any one client."""
        return self.limiter.peak(client)

    def refused(self) -> int:
        """Connections answered ``429`` because their client was at the cap."""
        return self.limiter.refused()

    def reset_connection_stats(self) -> None:
        """Peaks restart from the connections open now; the refusal count from 0."""
        self.limiter.reset()

    def request_count(self, path_prefix: str = "") -> int:
        """Requests received (faulted ones included) whose path starts with *path_prefix*."""
        with self._ctl:
            return sum(n for p, n in self.requests.items() if p.startswith(path_prefix))

    def reset_requests(self) -> None:
        with self._ctl:
            self.requests.clear()
            self.gzipped.clear()

    def count_gzipped(self, path: str) -> None:
        with self._ctl:
            self.gzipped[unquote(path)] += 1

    @property
    def blocking_queries(self) -> int:
        """Blocking queries parked right now."""
        return self.store.waiting

    def wait_blocking(self, n: int = 1, timeout: float = 5.0) -> bool:
        """Wait until at least *n* blocking queries are parked; False on timeout."""
        return self.store.wait_waiting(n, timeout)

    # ------------------------------------------------------------ control API (see Store)
    def add_node(self, *a: Any, **kw: Any) -> None:
        self.store.add_node(*a, **kw)

    def add_service(self, *a: Any, **kw: Any) -> str:
        return self.store.add_service(*a, **kw)

    def remove_service(self, *a: Any, **kw: Any) -> None:
        self.store.remove_service(*a, **kw)

    def remove_node(self, *a: Any, **kw: Any) -> None:
        self.store.remove_node(*a, **kw)

    def set_check(self, *a: Any, **kw: Any) -> None:
        self.store.set_check(*a, **kw)

    def set_service_health(self, *a: Any, **kw: Any) -> None:
        self.store.set_service_health(*a, **kw)

    def set_node_health(self, *a: Any, **kw: Any) -> None:
        self.store.set_node_health(*a, **kw)

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock (TTL checks, sessions, lock-delays) forward."""
        self.store.advance(seconds)

    def transaction(self) -> Any:
        return self.store.transaction()

    def service_index(self, name: str) -> int:
        with self.store._lock:
            return self.store.service_index(name)

    # ------------------------------------------------------------ request path
    def _serve(self, method: str, raw_path: str, headers: Any, body: bytes) -> Response:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        gen = self._gen
        with self._ctl:
            self.requests[path] += 1
        if self._latency and self._cut.wait(self._latency):
            raise Aborted()
        if gen != self._gen:
            raise Aborted()
        fault = self._fault(path, request_token(parse_qs(parts.query), headers))
        if fault is not None and fault.status == 0:
            raise Aborted()  # drop_next: hang up without a response
        resp = fault if fault is not None else self._dispatch(method, path, parts.query, headers, body, gen)
        resp.headers["X-Consul-Default-Acl-Policy"] = "deny" if self.acl is not None else "allow"
        return resp

    def _fault(self, path: str, token: str) -> Response | None:
        with self._ctl:
            for i, (status, prefix, body) in enumerate(self._fail_next):
                if path.startswith(prefix):
                    del self._fail_next[i]
                    if body is not None:
                        return text(status, body.replace("{token}", token))
                    return text(status, _FAULT_BODIES.get(status, "emulated failure"))
        rate, status, prefix = self._error_rate
        if rate > 0 and path.startswith(prefix) and self.store.random() < rate:
            return text(status, _FAULT_BODIES.get(status, "emulated failure"))
        return None

    def _dispatch(self, method: str, path: str, query: str, headers: Any, body: bytes, gen: int) -> Response:
        q = parse_qs(query, keep_blank_values=True)
        token = request_token(q, headers)
        req = Request(method, path, q, body, token, token_valid=False, abort=lambda: self._gen != gen)
        if self.acl is not None:
            if token and token not in self.acl:
                return text(403, "ACL not found")
            if not token:
                return text(403, "Permission denied: anonymous token lacks permission")
            if method != "GET" and self.acl[token] != "write":
                return text(403, f"Permission denied: token lacks write permission on {path}")
            req.token_valid = True
        elif token:
            req.token_valid = True
        return self.api.handle(req)


def request_token(query: Mapping[str, list[str]], headers: Any) -> str:
    """The ACL token of a request: ``?token=``, ``X-Consul-Token`` or ``Authorization: Bearer``."""
    token = (query.get("token") or [""])[0] or headers.get("X-Consul-Token", "")
    auth = headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    return token
