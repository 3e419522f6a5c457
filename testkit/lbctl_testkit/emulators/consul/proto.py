"""Transport-neutral request/response types shared by the endpoint modules."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from typing import Any, Callable

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes = b""
    token: str = ""
    token_valid: bool = False
    abort: Callable[[], bool] | None = None  # true once the server cut this request

    def q(self, name: str, default: str = "") -> str:
        vals = self.query.get(name)
        return vals[0] if vals else default

    def has(self, name: str) -> bool:
        return name in self.query


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class QueryOpts:
    min_index: int
    timeout: float
    consistency: str  # leader | stale | consistent
    abort: Callable[[], bool] | None = None


def ok_json(obj: Any, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    return Response(status, json.dumps(obj, separators=(",", ":")).encode(), JSON, headers or {})


def text(status: int, message: str) -> Response:
    return Response(status, message.encode(), TEXT)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` header asks for gzip (with a quality above 0), as
    the gziphandler that wraps every endpoint of Consul's HTTP API reads it
    (``agent/http.go``: ``GzipHandlerWithOpts(MinSize(0))``)."""
    for part in (accept_encoding or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() != "gzip":
            continue
        q = params.strip()
        try:
            return not q.startswith("q=") or float(q[2:]) > 0
        except ValueError:
            return False
    return False


def gzipped(resp: Response) -> Response:
    """``resp`` compressed as Consul sends it to a client that accepts gzip: every
    non-empty body, with ``Content-Encoding: gzip`` and ``Vary: Accept-Encoding``
    (level 1 here: the client sees the same bytes once inflated, sooner)."""
    if not resp.body or "Content-Encoding" in resp.headers:
        return resp
    return Response(resp.status, gzip.compress(resp.body, compresslevel=1, mtime=0), resp.content_type,
                    {**resp.headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
