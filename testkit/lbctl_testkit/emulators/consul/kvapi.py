"""``/v1/kv`` and ``/v1/session`` endpoints (Consul ``kvs_endpoint.go``, ``session_endpoint.go``).

A mixin of ``api.Api``: it uses its ``opts``/``blocking``/``meta``/``write_guard``.
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlencode

from .core import ConsulError
from .proto import Request, Response, ok_json

_KEY_CHARS = re.compile(r"[A-Za-z0-9,\-_./]*")
# Consul kvs_endpoint.go validateKVKey: extensions a CDN or proxy might cache.
_SUSPICIOUS = (".js", ".css", ".html", ".htm", ".xml", ".json", ".txt", ".log", ".php", ".asp", ".jsp",
               ".cgi", ".pl", ".py", ".rb", ".sh", ".exe", ".dll", ".bat", ".cmd", ".com", ".scr", ".vbs",
               ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".zip", ".rar", ".tar", ".gz",
               ".7z", ".bz2", ".jpg", ".jpeg", ".png", ".gif", ".svg", ".ico", ".bmp", ".mp3", ".mp4",
               ".avi", ".mov", ".wmv", ".flv", ".swf", ".woff", ".woff2", ".ttf", ".eot", ".otf")


def validate_key(key: str) -> None:
    """Recent Consul's key validation (400 on failure), plus its character set ``[A-Za-z0-9,-_./]``."""
    if key.startswith("/"):
        raise ConsulError(400, "key must not begin with a '/'")
    if "../" in key or "..\\" in key:
        raise ConsulError(400, "key contains invalid path traversal sequence")
    if not _KEY_CHARS.fullmatch(key):
        raise ConsulError(400, "key contains invalid characters; allowed: A-Z a-z 0-9 , - _ . /")
    lower = key.lower()
    for ext in _SUSPICIOUS:
        if lower.endswith(ext):
            raise ConsulError(400, f"key contains suspicious file extension '{ext}' that may be cached by proxies")


def _uint(req: Request, name: str) -> int | None:
    if not req.has(name):
        return None
    raw = req.q(name)
    if not raw.isdigit() or int(raw) >= 2 ** 64:
        raise ConsulError(500, f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    return int(raw)


def _conflicting(req: Request, *flags: str) -> None:
    if sum(1 for f in flags if req.has(f)) > 1:
        encoded = urlencode([(k, v) for k in sorted(req.query) for v in req.query[k]])
        raise ConsulError(400, f"Conflicting flags: {encoded}\n")


class KVApiMixin:
    # Provided by api.Api.
    store: Any
    emu: Any
    opts: Callable[[Request], Any]
    meta: Callable[..., dict[str, str]]
    blocking: Callable[..., tuple[int, Any]]
    write_guard: Callable[[Request], None]
    body_json: Callable[[Request], Any]

    # ------------------------------------------------------------ KV
    def kv(self, req: Request, x: str) -> Response:
        if x and self.emu.strict_kv_keys:
            validate_key(x)
        if req.method == "GET":
            return self.kv_get(req, x)
        if req.method == "PUT":
            return self.kv_put(req, x)
        return self.kv_delete(req, x)

    def kv_get(self, req: Request, key: str) -> Response:
        o = self.opts(req)
        not_found = lambda idx: Response(404, b"", "", self.meta(idx, o))
        if req.has("keys"):
            sep = req.q("separator") if req.has("separator") else req.q("seperator")
            idx, keys = self.blocking(o, "kv", self.store.read_kv_keys(key, sep))
            if not keys and key:
                return not_found(idx)
            return ok_json(keys, self.meta(idx, o))
        if req.has("recurse"):
            idx, rows = self.blocking(o, "kv", self.store.read_kv_list(key))
            return ok_json(rows, self.meta(idx, o)) if rows else not_found(idx)
        if not key:
            raise ConsulError(400, "Missing key name")
        idx, rec = self.blocking(o, "kv", self.store.read_kv(key))
        if rec is None:
            return not_found(idx)
        h = self.meta(idx, o)
        if req.has("raw"):
            h.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
            return Response(200, self.store.kv_raw(key), "text/plain", h)
        return ok_json([rec], h)

    def kv_put(self, req: Request, key: str) -> Response:
        self.write_guard(req)
        if not key:
            raise ConsulError(400, "Missing key name")
        _conflicting(req, "cas", "acquire", "release")
        flags = _uint(req, "flags") or 0
        cas = _uint(req, "cas")
        acquire = req.q("acquire") if req.has("acquire") else None
        release = req.q("release") if req.has("release") else None
        return ok_json(self.store.kv_put(key, req.body, flags=flags, cas=cas, acquire=acquire, release=release))

    def kv_delete(self, req: Request, key: str) -> Response:
        self.write_guard(req)
        _conflicting(req, "recurse", "cas")
        recurse = req.has("recurse")
        if not recurse and not key:
            raise ConsulError(400, "Missing key name")
        return ok_json(self.store.kv_delete(key, recurse=recurse, cas=_uint(req, "cas")))

    # ------------------------------------------------------------ sessions
    def session_create(self, req: Request) -> Response:
        self.write_guard(req)
        body = self.body_json(req)
        if not isinstance(body, dict):
            raise ConsulError(400, "Request decode failed: body must be a JSON object")
        return ok_json({"ID": self.store.session_create(body)})

    def session_destroy(self, req: Request, x: str) -> Response:
        self.write_guard(req)
        if not x:
            raise ConsulError(400, "Missing session")
        self.store.session_destroy(x)
        return ok_json(True)

    def session_renew(self, req: Request, x: str) -> Response:
        self.write_guard(req)
        if not x:
            raise ConsulError(400, "Missing session")
        return ok_json(self.store.session_renew(x))

    def session_info(self, req: Request, x: str) -> Response:
        if not x:
            raise ConsulError(400, "Missing session")
        o = self.opts(req)
        idx, rows = self.blocking(o, "sessions", self.store.read_session(x))
        return ok_json(rows, self.meta(idx, o))

    def session_list(self, req: Request) -> Response:
        o = self.opts(req)
        idx, rows = self.blocking(o, "sessions", self.store.read_sessions())
        return ok_json(rows, self.meta(idx, o))

    def session_node(self, req: Request, x: str) -> Response:
        if not x:
            raise ConsulError(400, "Missing node name")
        o = self.opts(req)
        idx, rows = self.blocking(o, "sessions", self.store.read_sessions(x))
        return ok_json(rows, self.meta(idx, o))
