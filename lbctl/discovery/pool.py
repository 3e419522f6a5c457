"""The HTTP connections of lbctl's Consul client (``consul.Client``): a requests adapter
whose pool puts open connections first and reads each answer's body at once."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool


class OpenFirst(queue.LifoQueue):
    """A connection pool's slots with open connections on top.  When the agent is at
    its connection cap it closes each new connection after its 429: that slot goes to
    the bottom, so the next request takes a connection the agent already accepted."""

    def _put(self, item: Any) -> None:
        if item is None or getattr(item, "sock", None) is None:
            self.queue.insert(0, item)
        else:
            self.queue.append(item)


class OpenFirstHTTP(HTTPConnectionPool):
    QueueCls = OpenFirst


class OpenFirstHTTPS(HTTPSConnectionPool):
    QueueCls = OpenFirst


class OneRead(HTTPAdapter):
    """Reads each answer's body at once: requests reads it 10 KB at a time, 1,500 times
    for the 15 MB of every check at 10,000 services, at several times the cost.
    A body read to its end hands its connection back to the pool (urllib3).

    A thread that sets ``before_body.hold`` (a function that waits up to the seconds it
    is given) has its bodies read a megabyte at a time, calling it before each piece,
    for ``HOLD_AT_MOST`` seconds in all: the rest of the body waits in the socket."""

    HOLD_AT_MOST = 0.1
    PIECE = 1 << 20

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_body = threading.local()

    def build_response(self, req: Any, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        hold: Callable[[float], object] | None = getattr(self.before_body, "hold", None)
        if hold is None:
            response._content = resp.read(decode_content=True)
            return response
        until, pieces = time.monotonic() + self.HOLD_AT_MOST, []
        while True:
            left = until - time.monotonic()
            if left > 0:
                hold(left)
            piece = resp.read(self.PIECE, decode_content=True)
            if not piece:
                break
            pieces.append(piece)
        response._content = b"".join(pieces)
        return response
