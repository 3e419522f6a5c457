"""What nginx's templates loop over, computed from the model: grouping and nginx's
limits are decided here, in Python, so templates stay plain loops.  Pure."""

from __future__ import annotations

from dataclasses import dataclass

from lbctl import model
from lbctl.errors import ConfigError


@dataclass(frozen=True)
class Location:
    path: str
    pool: model.Pool | None  # None: nothing routes here (answer 503)


@dataclass(frozen=True)
class VirtualServer:
    """An nginx ``server {}``: one host name (or the default server) of one listener."""

    listener: model.Listener
    host: str | None
    locations: tuple[Location, ...]
    routes: tuple[model.Route, ...] = ()  # routes to model.service_pools for this host (a comment each: the guard)


TEMPLATES = {"main": "nginx.conf.j2", "include": "nginx-http.conf.j2"}  # by layout


def view(desired: model.Desired, options, _env, _cache):
    """The template to render, its data, and nothing to do once it rendered."""
    return TEMPLATES[options.layout], nginx(desired, options.layout), lambda: None


def nginx(desired: model.Desired, layout: str) -> dict:
    modes = desired.pool_modes()
    for pool in desired.pools:
        _check_nginx_pool(pool)
    http = [lst for lst in desired.listeners if lst.mode == "http"]
    tcp = [lst for lst in desired.listeners if lst.mode == "tcp"]
    if tcp and layout == "include":
        raise ConfigError(f"listeners.{tcp[0].name}: tcp listeners need nginx layout 'main' "
                          "(a file included from http {} cannot hold a stream block)")
    pools = {p.name: p for p in desired.pools}
    declared = model.service_pools(http)
    return {
        "http_pools": [p for p in desired.pools if modes[p.name] == "http"],
        "tcp_pools": [p for p in desired.pools if modes[p.name] == "tcp"],
        "servers": (servers := [s for lst in http for s in _virtual_servers(lst, pools, declared)]),
        "names_hash": names_hash(servers),
        "tcp_listeners": tcp,
        "pools": pools,
        # nginx variable names allow no '-' or '.', so sticky pools get numbered ones.
        "sticky_vars": {p.name: f"lbctl_sticky_{i}" for i, p in enumerate(desired.pools) if p.sticky_cookie},
    }


def _check_nginx_pool(pool: model.Pool) -> None:
    hashing = pool.sticky_cookie or pool.balance in ("source", "random")
    if hashing and any(m.state == "backup" for m in pool.members):
        how = "sticky_cookie" if pool.sticky_cookie else f"balance {pool.balance}"
        raise ConfigError(f"pools.{pool.name}: nginx cannot combine backup members with {how}")


def _virtual_servers(lst: model.Listener, pools: dict[str, model.Pool], declared: set[str]) -> list[VirtualServer]:
    """One server per host (wildcards too: nginx picks an exact name, then the longest
    wildcard, as the route order does), then the default server.  Each location takes
    the pool of the first route (in ``Route.sort_key`` order) that would take its path,
    so nginx's longest-prefix match sends every request where HAProxy's first-match
    ``use_backend`` lines send it (docs/consul.md#route-order)."""
    default = pools.get(lst.default_pool) if lst.default_pool else None
    order = {id(r): i for i, r in enumerate(lst.routes)}
    by_host: dict[str | None, list[model.Route]] = {}
    for r in lst.routes:
        by_host.setdefault(r.host, []).append(r)
    wildcards = [r for r in lst.routes if r.host and r.host.startswith("*.")]
    out = []
    for host in [None, *(h for h in by_host if h is not None)]:
        # the routes that take this server's requests, in the one order (a few wildcards at most to try)
        found = {id(r): r for r in by_host.get(host, []) + by_host.get(None, [])
                 + [w for w in wildcards if host is not None and model.covers(w.host, host)]}
        applying = sorted(found.values(), key=lambda r: order[id(r)])
        paths = sorted({"/", *(r.path or "/" for r in applying)}, key=lambda p: (-len(p), p))
        locations = []
        for path in paths:
            first = next((r for r in applying if path.startswith(r.path or "/")), None)
            locations.append(Location(path, pools[first.pool] if first else default))
        marked = tuple(r for r in by_host.get(host, ()) if r.service is not None and r.pool in declared)
        out.append(VirtualServer(lst, host, tuple(locations), marked))
    return out


def names_hash(servers: list[VirtualServer]) -> tuple[int, int] | None:
    """``server_names_hash_max_size`` and ``_bucket_size`` for many or long host names
    (nginx's defaults, 512 and 32-128 by CPU, refuse to start otherwise); None: the defaults do."""
    names = {s.host for s in servers if s.host}
    longest = max(map(len, names), default=0)
    if len(names) <= 128 and longest <= 24:
        return None
    bucket = next(b for b in (64, 128, 256, 512) if longest + 32 <= b)
    return max(512, 1 << (4 * len(names) - 1).bit_length()), bucket
