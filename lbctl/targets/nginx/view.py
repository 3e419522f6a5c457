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
    wildcard, as the route order does), then the default server; locations as
    ``model.host_paths`` decides them."""
    return [VirtualServer(lst, host, tuple(Location(path, pools[pool] if pool else None) for path, pool in paths),
                          tuple(r for r in lst.routes if r.host == host and r.service is not None and r.pool in declared))
            for host, paths in model.host_paths(lst)]


def names_hash(servers: list[VirtualServer]) -> tuple[int, int] | None:
    """``server_names_hash_max_size`` and ``_bucket_size`` for many or long host names
    (nginx's defaults, 512 and 32-128 by CPU, refuse to start otherwise); None: the defaults do."""
    names = {s.host for s in servers if s.host}
    longest = max(map(len, names), default=0)
    if len(names) <= 128 and longest <= 24:
        return None
    bucket = next(b for b in (64, 128, 256, 512) if longest + 32 <= b)
    return max(512, 1 << (4 * len(names) - 1).bit_length()), bucket
