"""The HTTPS side of the emulator: TLS, HTTP/1.1 keep-alive, faults, request log.

``BigIPEmulator`` is what tests use::

    with BigIPEmulator(username="admin", password="secret") as emu:
        mr = ManagementRoot("127.0.0.1", "admin", "secret", port=emu.port,
                            token=True, verify=emu.ca_path)

Everything device-like lives in ``device.Device``; this module only moves
bytes, injects faults and records what it saw.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .certs import make_certs
from .device import Device


@dataclass
class Request:
    """One request as the emulator saw it (``status`` is filled in when answered)."""

    method: str
    path: str          # path without the query, as sent
    query: str
    status: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16   # headers + body leave in one segment (no Nagle/delayed-ACK stall)
    server: "_Server"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body = self.server.emulator._answer(self.command, self.path, self.headers,
                                                    raw, self.client_address[0])
        payload = b"" if body is None or status == 204 else json.dumps(body).encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext,
                 emulator: "BigIPEmulator") -> None:
        self.context = context
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return          # client refused our certificate or went away
        with self.conn_lock:
            self.connections.add(tls)
        try:
            super().finish_request(tls, client_address)
        finally:
            with self.conn_lock:
                self.connections.discard(tls)
            try:
                tls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client went away / TLS refused: not the emulator's business

    def drop_connections(self) -> None:
        with self.conn_lock:
            conns, self.connections = list(self.connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class BigIPEmulator:
    """An HTTPS BIG-IP (iControl REST + AS3) on 127.0.0.1.

    :param username, password: the one admin account (``users`` adds more)
    :param port: 0 picks a free port; ``recover()`` reuses the chosen one
    :param token_timeout: seconds a login token lives (device default 1200)
    :param transaction_timeout: idle seconds before a transaction expires (120)
    :param device_groups: sync-failover groups that ``config-sync to-group`` accepts
    :param clock: time source for tokens/transactions (inject a fake in tests)
    """

    def __init__(self, username: str = "admin", password: str = "admin", *,
                 users: dict[str, str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, version: str = "15.1.0", token_timeout: int = 1200,
                 transaction_timeout: int = 120, device_groups: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.username, self.password = username, password
        self.host, self.port = host, port
        self.device = Device({**(users or {}), username: password}, version=version,
                             clock=clock, token_timeout=token_timeout,
                             transaction_timeout=transaction_timeout,
                             device_groups=tuple(device_groups))
        self.requests: list[Request] = []
        self._fault_lock = threading.Lock()
        self._fail: tuple[int, int, str, str] = (0, 500, "", "")  # (count, status, message, path prefix)
        self._latency = 0.0
        self._dir: Path | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._context: ssl.SSLContext | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "BigIPEmulator":
        self._dir = Path(tempfile.mkdtemp(prefix="lbctl-bigip-"))
        files = make_certs(self._dir, tuple(dict.fromkeys((self.host, "127.0.0.1",
                                                           "localhost"))))
        self.ca_path, self.cert_path = str(files.ca), str(files.cert)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(files.cert, files.key)
        self._context = ctx
        self._listen()
        return self

    def _listen(self) -> None:
        assert self._context is not None
        self._server = _Server((self.host, self.port), self._context, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"bigip-emulator-{self.port}", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        self.device.stopping.set()
        self.device.as3_wake.set()
        self._close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "BigIPEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- the request path -----------------------------------------------------------------
    def _answer(self, method: str, raw_path: str, headers: Any, body: bytes,
                sender: str) -> tuple[int, Any]:
        split = urlsplit(raw_path)
        record = Request(method, split.path, split.query)
        with self._fault_lock:
            self.requests.append(record)
            latency = self._latency
            remaining, status, message, prefix = self._fail
            remaining = remaining if split.path.startswith(prefix) else 0
            if remaining:
                self._fail = (remaining - 1, status, message, prefix)
        if latency:
            self.device.stopping.wait(latency)
        if remaining:
            record.status = status
            message = message.replace("{token}", headers.get("X-F5-Auth-Token") or "")
            return status, {"code": status, "message": message, "errorStack": [],
                            "apiError": 1}
        record.status, answer = self.device.handle(method, raw_path, headers, body, sender)
        return record.status, answer

    # -- fault switches (thread-safe) -------------------------------------------------------
    @staticmethod
    def pair(active: "BigIPEmulator", standby: "BigIPEmulator", group: str = "dg1",
             clock: Callable[[], float] = time.time) -> Any:
        """Make two emulators one sync-failover device group (``cluster.DeviceGroup``, returned:
        its ``lag``, ``failure`` and ``fail_over()`` are the test's knobs)."""
        from .cluster import DeviceGroup

        standby.device.hostname = "bigip2.example.com" if active.device.hostname == "bigip1.example.com" \
            else standby.device.hostname
        return DeviceGroup(group, [active.device, standby.device], clock)

    def fail_next(self, n: int = 1, status: int = 500, message: str | None = None, path_prefix: str = "") -> None:
        """The next ``n`` requests under ``path_prefix`` (default: any path, login included) get
        ``status``.  ``{token}`` in ``message`` becomes the request's X-F5-Auth-Token, as a
        device that echoes the request would show it."""
        with self._fault_lock:
            self._fail = (n, status, message or f"Injected failure ({status}) from "
                                                "BigIPEmulator.fail_next", path_prefix)

    def fail_next_commit(self, message: str = "01070734:3: Configuration error: "
                         "injected commit failure") -> None:
        """The next transaction commit fails (400 "transaction failed:<message>")."""
        with self.device.lock:
            self.device.txns.fail_next_commit = message

    def set_latency(self, seconds: float) -> None:
        with self._fault_lock:
            self._latency = max(0.0, float(seconds))

    def expire_tokens(self) -> int:
        """Invalidate every token now (clients get 401 until they log in again)."""
        with self.device.lock:
            return self.device.auth.expire_all()

    def outage(self) -> None:
        """Close the listener and every open connection (connection refused/reset)."""
        self._close()

    def recover(self) -> None:
        """Listen again on the same port, state intact."""
        if self._server is None:
            self._listen()

    def set_as3_installed(self, installed: bool) -> None:
        self.device.as3_installed = bool(installed)

    def set_as3_delay(self, seconds: float, sync_timeout: float | None = None) -> None:
        """AS3 takes ``seconds`` per declaration (``0`` also releases declarations
        already waiting); sync POSTs become tasks after ``sync_timeout`` (device: 45 s)."""
        self.device.as3_delay = max(0.0, float(seconds))
        if self.device.as3_delay:
            self.device.as3_wake.clear()
        else:
            self.device.as3_wake.set()
        if sync_timeout is not None:
            self.device.as3_sync_timeout = float(sync_timeout)

    # -- runtime hooks on LTM objects --------------------------------------------------------
    def _member_key(self, pool: str, member: str) -> tuple[str, str]:
        pool = pool if pool.startswith("/") else f"/Common/{pool}"
        if not member.startswith("/"):
            member = f"/{pool.strip('/').split('/')[0]}/{member}"
        return pool, member

    def set_member_connections(self, pool: str, member: str, count: int) -> None:
        """What ``.../members/<m>/stats`` reports as ``serverside.curConns``."""
        with self.device.lock:
            self.device.ltm.set_member_connections(*self._member_key(pool, member), count)

    def set_member_health(self, pool: str, member: str, health: str) -> None:
        """Monitor result for a monitored member: ``up``, ``down`` or ``checking``."""
        with self.device.lock:
            self.device.ltm.set_member_health(*self._member_key(pool, member), health)

    def set_node_health(self, node: str, health: str) -> None:
        """Monitor result for a monitored node: ``up``, ``down`` or ``checking``."""
        node = node if node.startswith("/") else f"/Common/{node}"
        with self.device.lock:
            self.device.ltm.set_node_health(node, health)

    # -- observations ------------------------------------------------------------------------
    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        with self._fault_lock:
            return sum(1 for r in self.requests
                       if (method is None or r.method == method)
                       and r.path.startswith(path_prefix))

    def clear_requests(self) -> None:
        with self._fault_lock:
            self.requests.clear()

    @property
    def saves(self) -> int:
        """How many times the configuration was saved (sys config save, AS3)."""
        return len(self.device.saves)

    @property
    def unsaved_changes(self) -> bool:
        with self.device.lock:
            return self.device.ltm.generation != self.device.saved_generation

    @property
    def syncs(self) -> list[str]:
        """Device groups a config-sync was run to, in order."""
        return list(self.device.syncs)

    @property
    def logins(self) -> int:
        return self.device.auth.logins

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of emulator bugs answered as 500 (tests should assert none)."""
        return list(self.device.internal_errors)

    def dump(self) -> dict[str, Any]:
        """Pools (with members), nodes, custom monitors, virtuals and folders."""
        with self.device.lock:
            return self.device.ltm.dump()
