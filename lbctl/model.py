"""The lbctl model: what the load balancers should serve.

Frozen, canonical data and nothing else: no I/O, no knowledge of any target's
syntax.  Every value in here has already been validated (see ``validate.py``),
and every collection is sorted, so the same input always renders byte-identical
output.  The domain defaults live here, once.
"""

from __future__ import annotations

import msgspec

MODES = ("http", "tcp")
BALANCE = ("roundrobin", "leastconn", "source", "random")
CHECK_TYPES = ("none", "tcp", "http")
MEMBER_STATES = ("enabled", "drain", "maint", "backup")
WEIGHT_MIN, WEIGHT_MAX = 1, 256  # the range both HAProxy (0-256) and nginx (>=1) accept


class Member(msgspec.Struct, frozen=True, gc=False):
    """One backend instance.  ``state``: enabled | drain | maint | backup.

    The model's classes are msgspec structs rather than dataclasses: an
    inventory can hold 100,000 members, and a struct is built, hashed and
    compared several times faster (in C).  ``replace`` stands in for
    ``dataclasses.replace``.
    """

    name: str
    address: str
    port: int
    weight: int = 1
    state: str = "enabled"
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


class Route(msgspec.Struct, frozen=True, gc=False):
    """Send requests for ``host`` (any if None) under ``path`` (any if None) to ``pool``."""

    pool: str
    host: str | None = None
    path: str | None = None

    def sort_key(self) -> tuple:
        # Most specific first: a host beats no host, a longer prefix beats a shorter one.
        return (self.host is None, self.host or "", -len(self.path or ""), self.path or "")


class Listener(msgspec.Struct, frozen=True, gc=False):
    """A bound address: ``mode`` http (with routes) or tcp (default pool only)."""

    name: str
    port: int
    address: str = "0.0.0.0"
    mode: str = "http"
    default_pool: str | None = None
    routes: tuple[Route, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    client_timeout_ms: int = 30000


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


def host_paths(listener: Listener) -> list[tuple[str | None, tuple[tuple[str, str | None], ...]]]:
    """What each host of an http listener serves: ``(host, ((path, pool), ...))``, the
    host-less entry (None, for any other host) first.  A known host falls back to the
    listener's host-less routes, then to its default pool on ``/`` (None: nothing,
    a 503).  Paths are longest first: the order in which a first-match target tries them."""
    hosts: dict[str | None, dict[str, str | None]] = {None: {}}
    for route in listener.routes:
        hosts.setdefault(route.host, {})[route.path or "/"] = route.pool
    out = []
    for host, paths in hosts.items():
        merged = {**(hosts[None] if host else {}), **paths}
        merged.setdefault("/", listener.default_pool)
        out.append((host, tuple((p, merged[p]) for p in sorted(merged, key=lambda p: (-len(p), p)))))
    return out
