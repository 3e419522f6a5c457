"""The lbctl model: what the load balancers should serve.

Frozen, canonical data and nothing else: no I/O, no knowledge of any target's
syntax.  Every value in here has already been validated (see ``validate.py``),
and every collection is sorted, so the same input always renders byte-identical
output.  The domain defaults live here, once.
"""

from __future__ import annotations

from typing import Annotated, Iterable, Literal

import msgspec

MODES = ("http", "tcp")
BALANCE = ("roundrobin", "leastconn", "source", "random")
CHECK_TYPES = ("none", "tcp", "http")
MEMBER_STATES = ("enabled", "drain", "maint", "backup")
WEIGHT_MIN, WEIGHT_MAX = 1, 256  # the range both HAProxy (0-256) and nginx (>=1) accept
DNS_TYPES = ("A", "AAAA", "SRV", "CNAME")  # what a pool may publish (docs/dns.md)


PORT = Annotated[int, msgspec.Meta(ge=1, le=65535)]
WEIGHT = Annotated[int, msgspec.Meta(ge=WEIGHT_MIN, le=WEIGHT_MAX)]


class Member(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One backend instance.  ``state``: enabled | drain | maint | backup.

    The model's classes are msgspec structs rather than dataclasses: an
    inventory can hold 100,000 members, and a struct is built, hashed and
    compared several times faster (in C).  ``replace`` stands in for
    ``dataclasses.replace``.  The types' ranges and choices hold only for what
    msgspec decodes (a JSON inventory's plain members, lbctl/bulk.py); a
    member built in Python is checked by lbctl/validate.py first.
    """

    name: str
    address: str
    port: PORT
    weight: WEIGHT = 1
    state: Literal[MEMBER_STATES] = "enabled"
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()


class HealthCheck(msgspec.Struct, frozen=True, gc=False):
    """Active check (HAProxy) / passive failure accounting (nginx)."""

    type: str = "tcp"
    path: str = "/"
    host: str | None = None
    expect_status: int = 200
    interval_ms: int = 2000
    rise: int = 2
    fall: int = 3


class DnsName(msgspec.Struct, frozen=True, gc=False):
    """What a pool publishes in DNS (the ``dns`` kind): ``name`` relative to the zone
    (``@``: the apex), the record ``types``, and ``port_name`` for SRV records
    (``_<port_name>._tcp.<name>``)."""

    name: str
    types: tuple[str, ...] = ("A", "AAAA")
    port_name: str | None = None


class Pool(msgspec.Struct, frozen=True, gc=False):
    """A set of members behind one name, with how to balance and check them."""

    name: str
    members: tuple[Member, ...] = ()
    balance: str = "roundrobin"
    health: HealthCheck = HealthCheck()
    connect_timeout_ms: int = 5000
    server_timeout_ms: int = 30000
    sticky_cookie: str | None = None
    maxconn: int | None = None
    dns: DnsName | None = None  # published by dns targets; ignored by the others


class Route(msgspec.Struct, frozen=True, gc=False):
    """Send requests for ``host`` (any if None; ``*.example.com``: one or more labels
    before ``.example.com``) under ``path`` (a plain prefix; any if None) to ``pool``.
    ``service``: the Consul service that declared it (None: the inventory); renderers
    may ignore it."""

    pool: str
    host: str | None = None
    path: str | None = None
    service: str | None = None

    def sort_key(self) -> tuple:
        """The one order every target renders (docs/consul.md#route-order), most specific
        first: exact hosts (by name), then wildcards (longer suffix first), then no host;
        within a host, the longer path prefix first, then by path."""
        host = self.host or ""
        wildcard = host.startswith("*.")
        return (self.host is None, wildcard, -len(host) if wildcard else 0, host, -len(self.path or ""),
                self.path or "")


class Listener(msgspec.Struct, frozen=True, gc=False):
    """A bound address: ``mode`` http (with routes) or tcp (default pool only)."""

    name: str
    port: int
    address: str = "0.0.0.0"
    mode: str = "http"
    default_pool: str | None = None
    routes: tuple[Route, ...] = ()  # resolved (inventory and services), in ``Route.sort_key`` order
    tls_cert: str | None = None
    tls_key: str | None = None
    client_timeout_ms: int = 30000
    accept_routes: tuple[str, ...] = ()  # host patterns services may claim routes under (sorted)


class Desired(msgspec.Struct, frozen=True, gc=False):
    """Everything a target should serve: listeners and pools, sorted by name."""

    listeners: tuple[Listener, ...] = ()
    pools: tuple[Pool, ...] = ()

    def pool_modes(self) -> dict[str, str]:
        """The mode each pool is used in (``http`` when no listener uses it)."""
        modes = {p.name: "http" for p in self.pools}
        for listener in self.listeners:
            for name in listener_pools(listener):
                modes[name] = listener.mode
        return modes


def replace(obj, **changes):
    """A copy of a model object with ``changes`` (as ``dataclasses.replace``)."""
    return msgspec.structs.replace(obj, **changes)


def listener_pools(listener: Listener) -> list[str]:
    """Every pool a listener sends traffic to, without repeats, in order."""
    names = [r.pool for r in listener.routes]
    if listener.default_pool:
        names.append(listener.default_pool)
    return list(dict.fromkeys(names))


def service_pools(listeners: Iterable[Listener]) -> set[str]:
    """The pools that only routes services declare send to (no inventory route, no
    default pool): they come and go with their services (the removal guard)."""
    declared = {r.pool for lst in listeners for r in lst.routes if r.service is not None}
    inventory = {r.pool for lst in listeners for r in lst.routes if r.service is None}
    return declared - inventory - {lst.default_pool for lst in listeners}


def covers(pattern: str, host: str) -> bool:
    """Whether route host or accept_routes pattern ``pattern`` takes every request for
    ``host`` (a host or a pattern): the same name, or ``*.`` (one or more labels) and a
    suffix of it."""
    if not pattern.startswith("*."):
        return host == pattern
    name = host[2:] if host.startswith("*.") else host
    return name.endswith(pattern[1:]) or host == pattern


def host_paths(listener: Listener) -> list[tuple[str | None, tuple[tuple[str, str | None], ...]]]:
    """What each host of an http listener serves: ``(host, ((path, pool), ...))``, the
    host-less entry (None, for any other host) first, then each route host (wildcards
    too) in route order.  Each path takes the pool of the first route in
    ``Route.sort_key`` order that would take it (the host's own routes, the wildcards
    covering it, the host-less ones), else the default pool (None: nothing, a 503);
    paths are longest first.  So a longest-prefix matcher (nginx's locations, httpd's
    ProxyPass lines) sends every request where HAProxy's first-match ``use_backend``
    lines send it (docs/consul.md#route-order)."""
    by_host: dict[str | None, list[Route]] = {None: []}
    for r in listener.routes:
        by_host.setdefault(r.host, []).append(r)
    wildcards = [r for r in listener.routes if r.host and r.host.startswith("*.")]
    order = {id(r): i for i, r in enumerate(listener.routes)}
    out = []
    for host in by_host:
        # the routes that take this host's requests, in the one order (a few wildcards at most to try)
        found = {id(r): r for r in by_host[host] + by_host[None]
                 + [w for w in wildcards if host is not None and covers(w.host, host)]}
        applying = sorted(found.values(), key=lambda r: order[id(r)])
        paths = sorted({"/", *(r.path or "/" for r in applying)}, key=lambda p: (-len(p), p))
        first = (next((r.pool for r in applying if p.startswith(r.path or "/")), listener.default_pool) for p in paths)
        out.append((host, tuple(zip(paths, first))))
    return out
