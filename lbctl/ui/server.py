"""The HTTP side of the operator page: ``/``, ``/api/v1/status``, ``/ui/app.js`` and
``/ui/app.css``, read-only (GET and HEAD; anything else 405), with security headers on
every answer, secrets masked, and basic auth or a bearer token when configured
(required off loopback).  ``lbctl watch``'s status server (lbctl.watch.metrics) serves
the page beside its own endpoints; ``lbctl ui`` serves it alone (``Server``)."""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from lbctl import redact
from lbctl.errors import ConfigError
from lbctl.ui import live, page, view

REFRESH_S = 5
API = "/api/v1/status"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Auth:
    """Basic auth (``user`` and the password) or a bearer token (``user`` None)."""

    user: str | None
    secret: str

    def allows(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries the credentials (compared in constant time)."""
        scheme, _, given = (header or "").strip().partition(" ")
        if self.user is None:
            return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.secret.encode())
        try:
            decoded = base64.b64decode(given.strip(), validate=True)
        except ValueError:
            return False
        return scheme.lower() == "basic" and hmac.compare_digest(decoded, f"{self.user}:{self.secret}".encode())

    def challenge(self) -> str:
        return 'Bearer realm="lbctl"' if self.user is None else 'Basic realm="lbctl", charset="UTF-8"'


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_for(address: tuple[str, int], configured) -> Auth | None:
    """The auth of the page at ``address`` from lbctl.yml's ``ui.auth`` (``config.watch.UiAuth``).

    :raises ConfigError: off loopback without ``ui.auth``, or its secret cannot be read.
    """
    if configured is None:
        if not loopback(address[0]):
            raise ConfigError(f"refusing to serve the operator page on {address[0]}:{address[1]} without "
                              "ui.auth in lbctl.yml (a token or a user and password); or listen on 127.0.0.1")
        return None
    return Auth(configured.user, configured.secret())


class Page:
    """Answers the page's paths from a ``live.Reader``; ``off`` (a text) when it may not be served."""

    def __init__(self, reader: live.Reader, auth: Auth | None, off: str | None = None,
                 refresh_s: int = REFRESH_S) -> None:
        self.reader, self.auth, self.off, self.refresh_s = reader, auth, off, refresh_s

    def answer(self, target: str, authorization: str | None) -> tuple[int, str, bytes, dict] | None:
        """(status, content type, body, extra headers) for a UI path; None for any other path."""
        parts = urlsplit(target)
        path = parts.path
        if path not in ("/", API) and path not in page.ASSETS:
            return None
        if self.off is not None:
            return 403, "text/plain; charset=utf-8", (self.off + "\n").encode(), {}
        if self.auth is not None and not self.auth.allows(authorization):
            return 401, "text/plain; charset=utf-8", b"authentication required\n", {
                "WWW-Authenticate": self.auth.challenge()}
        if path in page.ASSETS:
            body, kind = page.asset(path)
            return 200, kind, body, {}
        query = parse_qs(parts.query)
        q = query.get("q", [""])[0][:200]
        try:
            number = int(query.get("page", ["1"])[0])
        except ValueError:
            return 400, "text/plain; charset=utf-8", b"page must be a whole number\n", {}
        status = view.status(self.reader.known(), time.time(), q, number)
        if path == API:
            return 200, "application/json", (json.dumps(status) + "\n").encode(), {}
        fragment = query.get("fragment", [""])[0] == "1"
        return 200, HTML, page.html(status, self.refresh_s, fragment).encode(), {}


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD only; the page's paths, then ``other`` (a subclass's own endpoints)."""

    server: ThreadingHTTPServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        ui = getattr(self.server, "page", None)
        found = ui.answer(self.path, self.headers.get("Authorization")) if ui is not None else None
        if found is None:
            self.other()
        else:
            status, kind, body, extra = found
            self.answer(status, body, kind, {**SECURITY_HEADERS, **extra})

    def do_HEAD(self) -> None:  # noqa: N802
        self.head_only = True
        self.do_GET()

    def refuse(self) -> None:
        self.answer(405, b"read-only: GET or HEAD\n", headers={**SECURITY_HEADERS, "Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = refuse  # noqa: N815

    def other(self) -> None:
        self.answer(404, b"not found: try / or /api/v1/status\n", headers=SECURITY_HEADERS)

    def answer(self, status: int, body: bytes, kind: str = "text/plain; charset=utf-8",
               headers: dict | None = None) -> None:
        if kind.startswith(("text/", "application/json")):
            body = redact.mask(body.decode()).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not getattr(self, "head_only", False):
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    """The page alone (``lbctl ui``), served from its own thread until ``shutdown``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], ui: Page, handler: type = Handler) -> None:
        self.page = ui
        super().__init__(address, handler)
        threading.Thread(target=self.serve_forever, name="page server", daemon=True).start()
