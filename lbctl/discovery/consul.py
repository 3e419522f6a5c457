"""Reading and watching Consul through py-consul (docs/upstream.md#consul-blocking-queries).

One blocking query per watched service on ``/v1/health/service/<name>``, plus one
on ``/v1/catalog/services`` when services are chosen by tag or filter.  Index
rules: the first query of a watch does not block (index 0 never does); an index
that goes backwards resets the watch (a restored or restarted server); an
answer with the same index, or equal data, is not a change.  Each watch is rate
limited (a burst of two, then ``min_query_interval``) and backs off
exponentially with jitter on errors, keeping its last good answer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable

import consul
from consul.callback import CB
import requests
from requests.adapters import HTTPAdapter

from lbctl.errors import DiscoveryError
from lbctl.sources import ConsulSettings

log = logging.getLogger("lbctl.consul")
BACKOFF_START = 0.25


class Client:
    """The one place lbctl talks to Consul.  Every failure is a one-line ``DiscoveryError``."""

    def __init__(self, settings: ConsulSettings, pool_size: int = 16) -> None:
        self.settings = settings
        verify: bool | str = str(settings.ca) if settings.ca and settings.verify else settings.verify
        cert = (str(settings.cert), str(settings.key)) if settings.cert else None
        self.api = consul.Consul(host=settings.host, port=settings.port, scheme=settings.scheme,
                                 token=settings.token(), dc=settings.datacenter, verify=verify, cert=cert)
        # Every watched query holds a connection while it waits: size the pool for them.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        self.api.http.session.mount("http://", adapter)
        self.api.http.session.mount("https://", adapter)
        self.where = f"consul {settings.scheme}://{settings.host}:{settings.port}"
        self.armed: set[str] = set()  # paths whose first blocking query went out

    def get(self, path: str, params: list[tuple[str, str]], index: int) -> tuple[int, Any]:
        """GET a blocking-capable endpoint: ``(X-Consul-Index, data)``; data None for a 404."""
        s = self.settings
        params = list(params)
        if index > 0:
            wait = s.wait_ms
            if path not in self.armed:  # spread the first blocking queries, or 1,000 of them
                self.armed.add(path)    # would time out together, wait after wait
                wait = int(wait * (0.5 + random.random() / 2))
            params += [("index", str(index)), ("wait", f"{max(1, wait // 1000)}s")]
        if s.stale:
            params.append(("stale", "1"))
        if s.datacenter:
            params.append(("dc", s.datacenter))
        try:
            idx, data = self.api.http.get(CB.json(index=True, allow_404=True), path, params=params,
                                          headers=self.api.prepare_headers(None))
        except (requests.RequestException, consul.ConsulException, OSError, ValueError) as exc:
            raise DiscoveryError(f"{self.where}{path}: {reason(exc)}") from None
        try:
            return int(idx), data
        except (TypeError, ValueError):
            raise DiscoveryError(f"{self.where}{path}: bad X-Consul-Index {idx!r}") from None

    def health(self, service: str, index: int = 0) -> tuple[int, list]:
        params = [("tag", self.settings.tag)] if self.settings.tag else []
        idx, data = self.get(f"/v1/health/service/{service}", params, index)
        return idx, data or []

    def services(self, index: int = 0) -> tuple[int, dict[str, list]]:
        params = [("filter", self.settings.filter)] if self.settings.filter else []
        idx, data = self.get("/v1/catalog/services", params, index)
        return idx, data if isinstance(data, dict) else {}

    def close(self) -> None:
        self.api.http.session.close()


def reason(exc: BaseException) -> str:
    """A one-line reason without secrets (py-consul puts no token in messages; requests may put the URL)."""
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def selected(settings: ConsulSettings, catalog: dict[str, list]) -> set[str]:
    """The services to watch: the named ones, plus those in the (filtered) catalog that carry the tag."""
    chosen = set(settings.services)
    if settings.tag or settings.filter:
        tag = (settings.tag or "").lower()
        chosen |= {name for name, tags in catalog.items()
                   if name != "consul" and (not tag or tag in {str(t).lower() for t in tags or []})}
    return chosen


def snapshot(client: Client) -> dict[str, list]:
    """Every watched service's entries, read once without blocking (for one-shot commands)."""
    catalog = client.services()[1] if client.settings.tag or client.settings.filter else {}
    return {name: client.health(name)[1] for name in sorted(selected(client.settings, catalog))}


class Watch(threading.Thread):
    """One blocking query in a loop; calls ``on_change(key, data)`` when its data changes."""

    def __init__(self, key: str, fetch: Callable[[int], tuple[int, Any]], on_change: Callable[[str, Any], None],
                 on_error: Callable[[str, DiscoveryError], None], min_interval: float, retry_max: float) -> None:
        super().__init__(name=f"watch {key}", daemon=True)
        self.key, self.fetch, self.on_change, self.on_error = key, fetch, on_change, on_error
        self.min_interval, self.retry_max = min_interval, retry_max
        self.stopped = threading.Event()
        self.index = 0
        self.data: Any = None
        self.seen = False

    def run(self) -> None:
        tokens, refilled, backoff = 2.0, time.monotonic(), BACKOFF_START
        while not self.stopped.is_set():
            now = time.monotonic()
            tokens = min(2.0, tokens + (now - refilled) / self.min_interval) if self.min_interval else 2.0
            refilled = now
            if tokens < 1:
                self.pause((1 - tokens) * self.min_interval)
                continue
            tokens -= 1
            try:
                index, data = self.fetch(self.index)
            except DiscoveryError as exc:
                self.on_error(self.key, exc)
                self.pause(backoff * (0.5 + random.random()))  # jitter: 0.5x to 1.5x
                backoff = min(backoff * 2, self.retry_max)
                continue
            backoff = BACKOFF_START
            if self.stopped.is_set():
                return
            self.step(index, data)

    def step(self, index: int, data: Any) -> None:
        """Apply the index rules to one answer."""
        if index < self.index:
            log.warning("%s: index went back from %d to %d: resetting the watch", self.key, self.index, index)
            self.index = 0  # the next query does not block, and its answer is taken as new
        else:
            self.index = max(index, 1)
        if self.seen and data == self.data:
            return
        self.data, self.seen = data, True
        self.on_change(self.key, data)

    def pause(self, seconds: float) -> None:
        self.stopped.wait(seconds)

    def cancel(self) -> None:
        """Stop after the query in flight (its answer is dropped)."""
        self.stopped.set()
