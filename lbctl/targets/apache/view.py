"""What Apache's templates loop over, computed from the model: what httpd cannot do is
refused here, and names, routes and limits are decided here, in Python, so templates stay
plain loops (docs/apache.md#the-mapping).  Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from lbctl import model
from lbctl.errors import ConfigError

TEMPLATES = {"main": "apache.conf.j2", "include": "apache-http.conf.j2"}  # by layout
LBMETHODS = {"roundrobin": "byrequests", "leastconn": "bybusyness"}
STATUS = {"enabled": "", "drain": "+N", "maint": "+D", "backup": "+H"}  # BalancerMember status= flags
LOADFACTOR_MAX = 100  # mod_proxy's loadfactor is 1 to 100
# httpd's fixed sizes (modules/proxy/mod_proxy.h, 2.4; measured with 2.4.71's -t): a
# balancer's name (balancer://<pool>, 95 bytes) and a route (63 bytes).
BALANCER_NAME_MAX = 95 - len("balancer://")
ROUTE_MAX = 63
# Where each listener VirtualHost serves its balancer-manager (loopback only): no route can
# claim it, as route paths cannot hold '!' (lbctl.validate.URL_PATH).
MANAGER_PATH = "/!lbctl/balancer-manager"
# In the <Proxy> of a pool only routes services declare send to (model.service_pools): the guard reads it back.
SERVICE_MARK = "# only routes services declare send here"


@dataclass(frozen=True)
class Member:
    member: model.Member
    route: str  # the route= value: the member's name (shortened to httpd's limit, stably)
    status: str
    max: int | None


@dataclass(frozen=True)
class Balancer:
    pool: model.Pool
    name: str  # balancer://<name>: httpd compares balancer names without case
    lbmethod: str
    members: tuple[Member, ...]

    @property
    def retry(self) -> int:
        """Seconds a member in error stays out (retry=): as long as a check takes to bring it back, or
        without checks 0, always retried (nginx's max_fails=0)."""
        health = self.pool.health
        return 0 if health.type == "none" else max(1, -(-health.interval_ms * health.rise // 1000))


@dataclass(frozen=True)
class Location:
    path: str
    balancer: Balancer | None  # None: nothing routes here (answer 503)


@dataclass(frozen=True)
class VirtualHost:
    """An Apache ``<VirtualHost>``: one host name (or the default) of one listener."""

    listener: model.Listener
    host: str | None
    locations: tuple[Location, ...]

    @property
    def balancers(self) -> list[Balancer]:
        """The balancers it routes to: its own copies (``BalancerInherit Off``), each once."""
        found = {loc.balancer.name: loc.balancer for loc in self.locations if loc.balancer}
        return list(found.values())

    @property
    def sticky(self) -> list[Balancer]:
        """The sticky balancers it routes to (each needs its route cookie set)."""
        found = {loc.balancer.name: loc.balancer for loc in self.locations if loc.balancer and loc.balancer.pool.sticky_cookie}
        return [found[name] for name in sorted(found)]


def view(desired: model.Desired, options, _env, _cache):
    """The template to render, its data, and nothing to do once it rendered."""
    return TEMPLATES[options.layout], apache(desired, options), lambda: None


def apache(desired: model.Desired, options) -> dict:
    for lst in desired.listeners:
        _check_listener(lst, options)
    balancers = {p.name: _balancer(p, options.processes) for p in desired.pools}
    _check_names(balancers)
    hosts = [v for lst in desired.listeners for v in _virtual_hosts(lst, balancers)]
    checks = [p.health for p in desired.pools]
    used = {b.name for v in hosts for b in v.balancers}
    return {
        "service_pools": model.service_pools(desired.listeners),
        "service_mark": SERVICE_MARK,
        "unused": [b for b in balancers.values() if b.name not in used],
        "growth": options.growth if options.runtime_api else 0,
        "manager_path": MANAGER_PATH if options.runtime_api else None,
        "vhosts": hosts,
        "listens": list(dict.fromkeys(_bind(lst) for lst in desired.listeners)),
        "status_exprs": sorted({h.expect_status for h in checks if h.type == "http"}),
        "manager": options.manager,
        "hcheck": any(h.type != "none" for h in checks),
        "tls": any(lst.tls_cert for lst in desired.listeners),
        "sticky": any(p.sticky_cookie for p in desired.pools),
    }


def route(name: str) -> str:
    """A member's route= value: its name, or, past httpd's 63 bytes, a stable shortening."""
    if len(name) <= ROUTE_MAX:
        return name
    return f"{name[:ROUTE_MAX - 13]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _bind(lst: model.Listener) -> str:
    return f"[{lst.address}]:{lst.port}" if ":" in lst.address else f"{lst.address}:{lst.port}"


def _check_listener(lst: model.Listener, options) -> None:
    where = f"listeners.{lst.name}"
    if lst.mode == "tcp":
        raise ConfigError(f"{where}: apache cannot serve tcp listeners (mod_proxy_connect tunnels only HTTP "
                          "CONNECT requests); use a haproxy or nginx target for it")
    host, port = options.manager_address
    if lst.port == port and lst.address in (host, "0.0.0.0", "::"):
        raise ConfigError(f"{where}: {_bind(lst)} clashes with the balancer-manager on {options.manager} "
                          "(set manager in lbctl.yml to another port)")


def _balancer(pool: model.Pool, processes: int) -> Balancer:
    where = f"pools.{pool.name}"
    if pool.balance not in LBMETHODS:
        raise ConfigError(f"{where}.balance: apache has no {pool.balance!r} balancing "
                          f"(it maps only {' and '.join(LBMETHODS)})")
    if len(pool.name) > BALANCER_NAME_MAX:
        raise ConfigError(f"{where}: apache's balancer names hold at most {BALANCER_NAME_MAX} characters")
    if pool.health.type == "http" and pool.health.host:
        raise ConfigError(f"{where}.health.host: apache's mod_proxy_hcheck cannot send a Host header of its own")
    # mod_proxy's max= counts per child process: divide the pool's cap among them (docs/apache.md).
    cap = max(1, pool.maxconn // processes) if pool.maxconn else None
    members = []
    for i, m in enumerate(pool.members):
        if m.weight > LOADFACTOR_MAX:
            raise ConfigError(f"{where}.members[{i}].weight: apache's loadfactor is 1 to {LOADFACTOR_MAX} "
                              f"(got {m.weight})")
        members.append(Member(m, route(m.name), STATUS[m.state], cap))
    routes = [m.route for m in members]
    if len(set(routes)) != len(routes):
        raise ConfigError(f"{where}: two members share the route {_dup(routes)!r} (their names' first "
                          f"{ROUTE_MAX} characters)")
    return Balancer(pool, balancer_name(pool.name), LBMETHODS[pool.balance], tuple(members))


def balancer_name(pool: str) -> str:
    """A pool's balancer name (balancer://<name>): httpd compares them without case."""
    return pool.lower()


def _check_names(balancers: dict[str, Balancer]) -> None:
    names = [b.name for b in balancers.values()]
    if len(set(names)) != len(names):
        dup = _dup(names)
        same = " and ".join(n for n in balancers if n.lower() == dup)
        raise ConfigError(f"pools: {same} differ only in case, and apache compares balancer names without case")


def _dup(values: list[str]) -> str:
    seen: set[str] = set()
    return next(v for v in values if v in seen or seen.add(v))


def _virtual_hosts(lst: model.Listener, balancers: dict[str, Balancer]) -> list[VirtualHost]:
    # httpd takes the first ProxyPass that matches: host_paths gives the longest path first.
    return [VirtualHost(lst, host, tuple(Location(path, balancers[pool] if pool else None) for path, pool in paths))
            for host, paths in model.host_paths(lst)]
