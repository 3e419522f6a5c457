"""Transport-neutral request/response types shared by the endpoint modules."""

from __future__ import annotations

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
