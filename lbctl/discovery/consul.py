"""Reading and watching Consul through py-consul (docs/upstream.md#consul-blocking-queries).

``Client`` is the one place lbctl talks to Consul.  It holds at most
``max_connections`` HTTP connections (a requests pool that blocks when full), counts
requests by outcome, and shares one back-off among every request: a 429, a reset
connection, a timeout or a server error slows the whole watcher down (exponentially,
with jitter) instead of letting each query retry on its own.  Service names from
the catalog are untrusted: a name must be a plain identifier (which needs no
escaping in a URL path, and is never ``.`` or ``..``) before any request is built.

``Watch`` runs one blocking query in a loop.  Index rules: the first query does not
block (index 0 never does); an index that goes backwards resets the watch (a
restored or restarted server); an answer with the same index is not a change.  It is
rate limited by a token bucket (``Bucket``: a burst of two, then one per
``min_query_interval``, full again after a quiet spell) and backs off on errors.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import quote

import consul
import msgspec
import requests
import urllib3

from lbctl import validate as v
from lbctl.config.consul import ConsulSettings
from lbctl.discovery import checks, pool
from lbctl.discovery.pool import OneRead, OpenFirstHTTP, OpenFirstHTTPS
from lbctl.errors import ConfigError, DiscoveryError

log = logging.getLogger("lbctl.consul")
BACKOFF_START = 0.25
NO_NODE = "lbctl-checks-index"  # a node name to read the checks table's index with (checks_index)


class Busy(DiscoveryError):
    """Consul asked lbctl to slow down (429) or failed (5xx)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class Throttle:
    """Back-pressure shared by every request of a client.

    Reads of single services (the blocking watches are not counted) may run
    ``limit`` at a time: a failure halves it, each success adds ``1/limit`` (additive
    increase, multiplicative decrease, as TCP does), so the readers settle at what
    Consul accepts.  Each failure also pushes back every request by a delay that
    doubles while failures go on (with jitter) and halves with each success.
    """

    def __init__(self, cap: float, most: int, stopped: threading.Event) -> None:
        self.cap, self.most, self.stopped = cap, most, stopped
        self.limit = float(most)
        self.active = 0
        self.delay = 0.0
        self.until = 0.0
        self.cond = threading.Condition()

    def acquire(self, counted: bool) -> None:
        with self.cond:
            while not self.stopped.is_set():
                left = self.until - time.monotonic()
                if left <= 0 and not (counted and self.active >= int(self.limit)):
                    break
                self.cond.wait(min(left, 0.5) if left > 0 else 0.5)
            if counted:
                self.active += 1

    def release(self, counted: bool, ok: bool) -> None:
        with self.cond:
            self.active -= counted
            if ok:
                self.limit = min(self.most, self.limit + 1 / self.limit)
                self.delay = self.delay / 2 if self.delay > BACKOFF_START else 0.0
            else:
                self.limit = max(1.0, self.limit / 2)
                self.delay = min(self.cap, self.delay * 2 or BACKOFF_START)
                self.until = max(self.until, time.monotonic() + self.delay * (0.5 + random.random()))
            self.cond.notify_all()


class Client:
    """Every failure is a one-line ``DiscoveryError``."""

    def __init__(self, settings: ConsulSettings, observe: Callable[[str, str], None] = lambda kind, outcome: None,
                 retry_max: float = 30.0) -> None:
        self.settings = settings
        self.observe = observe
        verify: bool | str = str(settings.ca) if settings.ca and settings.verify else settings.verify
        cert = (str(settings.cert), str(settings.key)) if settings.cert else None
        self.api = consul.Consul(host=settings.host, port=settings.port, scheme=settings.scheme,
                                 token=settings.token(), dc=settings.datacenter, verify=verify, cert=cert)
        # Never more than max_connections at once: a request waits for a free connection.
        adapter = self.adapter = OneRead(pool_connections=1, pool_maxsize=settings.max_connections, pool_block=True)
        adapter.poolmanager.pool_classes_by_scheme = {"http": OpenFirstHTTP, "https": OpenFirstHTTPS}
        self.api.http.session.mount("http://", adapter)
        self.api.http.session.mount("https://", adapter)
        # Consul gzips every answer for a client that accepts it (requests does, by
        # default): 15 MB of checks at 10,000 services, compressed by the agent and
        # inflated here on every change.  Plain answers cost neither (docs/consul.md).
        self.api.http.session.headers["Accept-Encoding"] = "identity"
        settle_environment(self.api.http)
        self.headers = {**self.api.http.session.headers, **self.api.prepare_headers(None)}
        self.where = f"consul {settings.scheme}://{settings.host}:{settings.port}"
        self.armed: set[str] = set()  # paths whose first blocking query went out
        self.closed = threading.Event()
        self.throttle = Throttle(retry_max, settings.max_connections, self.closed)
        self.lock = threading.Lock()
        self.in_use = 0  # requests in flight, each on a connection of its own
        self.last_answer = 0.0  # time.monotonic() of the last good answer
        # Waits (up to the seconds given) before a feed's answer body is read, and before
        # each megabyte of it (``lbctl watch``: until its round under way ends; OneRead
        # bounds the wait): the feeds' bodies (15 MB of checks at 10,000 services) are
        # read and compared once the change already known is applied.
        self.yield_to: Callable[[float], object] | None = None

    def get(self, kind: str, path: str, params: list[tuple[str, str]], index: int,
            decode: Callable[[bytes], Any] = msgspec.json.decode, feed: bool = False) -> tuple[int, Any]:
        """GET a blocking-capable endpoint: ``(X-Consul-Index, data)``; data None for a 404.
        ``feed``: a feed's blocking query, whose answer body waits for ``yield_to``."""
        self.adapter.before_body.hold = self.yield_to if feed and index > 0 else None
        params = self.params(path, params, index)
        counted = index == 0  # blocking queries are not limited: they would hold the readers' slots
        self.throttle.acquire(counted)
        with self.lock:
            self.in_use += 1
        ok = False
        try:
            r = pool.get(self.adapter, self.api.http, self.headers, path, params)
            idx, data = answer(consul.base.Response(r.status_code, r.headers, r.content), decode)
            idx, ok = int(idx), True
        except Busy as exc:
            self.observe(kind, "429" if exc.status == 429 else "error")
            raise Busy(exc.status, f"{self.where}{path}: {exc}") from None
        except (requests.RequestException, consul.ConsulException, OSError, ValueError, msgspec.DecodeError,
                urllib3.exceptions.HTTPError, DiscoveryError) as exc:  # urllib3's: a body cut short
            self.observe(kind, "error")
            raise DiscoveryError(f"{self.where}{path}: {reason(exc)}") from None
        finally:
            with self.lock:
                self.in_use -= 1
            self.throttle.release(counted, ok)
        self.last_answer = time.monotonic()
        self.observe(kind, "ok")
        return idx, data

    def params(self, path: str, params: list[tuple[str, str]], index: int) -> list[tuple[str, str]]:
        s = self.settings
        params = list(params)
        if index > 0:
            wait = s.wait_ms
            if path not in self.armed:  # spread the first blocking queries
                self.armed.add(path)
                wait = int(wait * (0.5 + random.random() / 2))
            params += [("index", str(index)), ("wait", f"{max(1, wait // 1000)}s")]
        if s.stale:
            params.append(("stale", "1"))
        if s.datacenter:
            params.append(("dc", s.datacenter))
        return params

    def health(self, service: str, index: int = 0) -> tuple[int, list]:
        """:raises ConfigError: the name is not safe in a URL path (nothing is sent)."""
        params = [("tag", self.settings.tag)] if self.settings.tag else []
        idx, data = self.get("service", f"/v1/health/service/{service_path(service)}", params, index)
        return idx, data if isinstance(data, list) else []

    def services(self, index: int = 0, decode: Callable[[bytes], Any] = msgspec.json.decode
                 ) -> tuple[int, dict[str, list]]:
        params = [("filter", self.settings.filter)] if self.settings.filter else []
        idx, data = self.get("catalog", "/v1/catalog/services", params, index, decode, feed=True)
        return idx, data if isinstance(data, dict) else {}

    def checks(self, index: int = 0, book: checks.Book | None = None) -> tuple[int, checks.Reading]:
        """Every check in the datacenter (``checks.Reading``; against ``book``, the
        previous answers, only what differs is decoded)."""
        idx, data = self.get("checks", "/v1/health/state/any", [], index, lambda body: checks.Reading(body, book),
                             feed=True)
        return idx, data if data is not None else checks.Reading(b"[]")

    def checks_index(self) -> int:
        """The checks table's index: the checks of a node that does not exist (Consul's
        ``NodeChecks`` answers with the table's index; one lookup, an empty list)."""
        return self.get("checks", f"/v1/health/node/{NO_NODE}", [], 0, lambda body: None)[0]

    def close(self) -> None:
        self.closed.set()
        self.api.http.session.close()


def settle_environment(http: Any) -> None:
    """Read what requests takes from the environment (proxies and ``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``, ``~/.netrc``) once, for the agent's address, instead of on
    every request: there each is a ``stat()`` or more (three per request, with a CA
    bundle set), and every system call hands the GIL to the watch's other threads.  The
    environment lbctl started with is the one it keeps."""
    session, url = http.session, http.base_uri
    merged = session.merge_environment_settings(url, {}, None, http.verify, None)
    auth = requests.utils.get_netrc_auth(url)
    session.trust_env = False
    session.proxies = merged["proxies"]
    if auth:
        session.auth = auth
    if http.scheme == "https":  # a CA bundle named in the environment, as requests would take it
        http.verify = merged["verify"]


def answer(response: Any, decode: Callable[[bytes], Any]) -> tuple[str | None, Any]:
    """py-consul's callback: ``(X-Consul-Index, decoded body)``; None for a 404."""
    code, body = response.code, response.body
    if code == 429 or code >= 500:
        raise Busy(code, f"{code} {first_line(body)}")
    if code >= 400 and code != 404:
        raise DiscoveryError(f"{code} {first_line(body)}")
    idx = response.headers.get("X-Consul-Index")
    if idx is None:
        raise DiscoveryError("no X-Consul-Index header")
    return idx, decode(body) if code != 404 else None


class SameBody:
    """Decodes an answer, or hands back the very object decoded from the last one when
    the body is the same bytes (the catalog after an instance came or went, or after an
    edit of one: hundreds of kilobytes at 10,000 services, compared at C speed)."""

    def __init__(self) -> None:
        self.body: bytes | None = None
        self.data: Any = None

    def __call__(self, body: bytes) -> Any:
        if body != self.body:
            self.data, self.body = msgspec.json.decode(body), body
        return self.data


def first_line(body: bytes) -> str:
    return " ".join(body[:200].decode("utf-8", "replace").split())


def service_path(name: str) -> str:
    """The name as a URL path segment.  :raises ConfigError: not a plain identifier."""
    v.ident(name, "service name")
    return quote(name, safe="")  # a no-op for an identifier: py-consul quotes it once more


def safe_name(name: Any) -> bool:
    try:
        service_path(name)
        return True
    except ConfigError:
        return False


def reason(exc: BaseException) -> str:
    """A one-line reason without secrets (py-consul puts no token in messages; requests may put the URL)."""
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def selected(settings: ConsulSettings, catalog: dict[str, list]) -> tuple[set[str], list[str]]:
    """The services to watch (the named ones, plus those in the (filtered) catalog that
    carry the tag), and a problem for each catalog name that is not safe to ask for."""
    chosen = set(settings.services)
    if settings.tag or settings.filter:
        tag = (settings.tag or "").lower()
        chosen |= {name for name, tags in catalog.items()
                   if name != "consul" and (not tag or tag in {str(t).lower() for t in tags or []})}
    bad = sorted(n for n in chosen if not safe_name(n))
    return chosen - set(bad), [f"consul service {v.show(n)} skipped: its name is not a plain identifier "
                                 "(letters, digits, '_', '.' or '-', at most 128)" for n in bad]


def snapshot(client: Client) -> tuple[dict[str, list], list[str]]:
    """Every watched service's entries, read once without blocking, at most
    ``max_connections`` at a time (for one-shot commands), and the problems found."""
    catalog = client.services()[1] if client.settings.tag or client.settings.filter else {}
    names, problems = selected(client.settings, catalog)
    with ThreadPoolExecutor(client.settings.max_connections) as pool:
        read = dict(zip(sorted(names), pool.map(lambda n: client.health(n)[1], sorted(names))))
    return read, problems


class Bucket:
    """A token bucket: ``burst`` at once, then one every ``interval`` seconds.  It fills
    while nothing is taken (a blocking query that waited counts), so the first
    change after a quiet spell is never held back; 0: never waits."""

    def __init__(self, interval: float, burst: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.burst, self.clock = interval, burst, clock
        self.tokens, self.refilled = burst, clock()

    def take(self) -> float:
        """Take a token: 0.0, or the seconds to wait (none taken) until there is one."""
        now = self.clock()
        if not self.interval:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) / self.interval)
        self.refilled = now
        if self.tokens < 1:
            return (1 - self.tokens) * self.interval
        self.tokens -= 1
        return 0.0


class Watch(threading.Thread):
    """One blocking query in a loop; calls ``on_answer(index, data)`` for every answer
    with a new index (after a reset too), and ``on_error(key, exc)`` for failures."""

    def __init__(self, key: str, fetch: Callable[[int], tuple[int, Any]], on_answer: Callable[[int, Any], None],
                 on_error: Callable[[str, DiscoveryError], None], min_interval: float, retry_max: float) -> None:
        super().__init__(name=f"watch {key}", daemon=True)
        self.key, self.fetch, self.on_answer, self.on_error = key, fetch, on_answer, on_error
        self.min_interval, self.retry_max = min_interval, retry_max
        self.stopped = threading.Event()
        self.index = 0

    def run(self) -> None:
        bucket, backoff = Bucket(self.min_interval), BACKOFF_START
        while not self.stopped.is_set():
            wait = bucket.take()
            if wait:
                self.pause(wait)
                continue
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
            return
        if self.index and index == self.index:
            return  # the wait ran out: nothing changed
        self.index = max(index, 1)
        self.on_answer(index, data)

    def pause(self, seconds: float) -> None:
        self.stopped.wait(seconds)

    def cancel(self) -> None:
        """Stop after the query in flight (its answer is dropped)."""
        self.stopped.set()
