"""The HTTP connections of lbctl's Consul client (``consul.Client``): a requests adapter
whose pool puts open connections first and reads each answer's body at once, and the
GET that goes to it without requests' Session."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
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


def get(adapter: HTTPAdapter, http: Any, headers: Mapping[str, str], path: str, params: list[tuple[str, str]]
        ) -> requests.Response:
    """GET ``path`` through ``adapter`` as py-consul's ``HTTPClient.get`` sends it (``http``:
    its URL, timeout and TLS settings, its session's proxies and credentials), but not
    through requests' Session: the Session's cookie jars, hooks, redirects and merges of
    settings cost 0.5–0.6 ms of CPU per request on a 2-core machine (bench/consul_get.py),
    and Consul's answers use none of them.  A redirect is answered as it comes."""
    request = requests.PreparedRequest()
    request.method, request.url, request.body, request.hooks = "GET", http.uri(path, params), None, {"response": []}
    request.headers = CaseInsensitiveDict(headers)
    if http.session.auth:
        request.prepare_auth(http.session.auth)
    return adapter.send(request, timeout=http.timeout(params), verify=http.verify, cert=http.cert,
                        proxies=http.session.proxies)
