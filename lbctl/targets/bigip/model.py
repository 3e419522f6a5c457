"""lbctl's own picture of what it manages on a BIG-IP: pools, members and monitors
as plain frozen dataclasses, built from the model or parsed from iControl REST
JSON, and written back as iControl REST bodies.  Pure: no I/O, no f5-sdk.

Ownership and draining live on the device, in ``description`` fields:
``lbctl:owner=<owner>`` marks a pool or monitor as lbctl's, and a member being
removed carries ``lbctl:drain-since=<unix time>`` until it is deleted.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from lbctl import guard, model
from lbctl.errors import ConfigError

OWNER = "lbctl:owner="
DRAIN = "lbctl:drain-since="
# model balance -> (mode with equal weights, mode with ratios).  BIG-IP has no
# source-hash or random pool mode: affinity is a persistence profile on the
# virtual server, which lbctl does not manage (docs/bigip.md).
LB_MODES = {
    "roundrobin": ("round-robin", "ratio-member"),
    "leastconn": ("least-connections-member", "ratio-least-connections-member"),
    "source": ("round-robin", "ratio-member"),
    "random": ("round-robin", "ratio-member"),
}
ADMIN = {"enabled": "enabled", "backup": "enabled", "drain": "disabled", "maint": "offline"}
ADMIN_WRITE = {"enabled": {"session": "user-enabled", "state": "user-up"},
               "disabled": {"session": "user-disabled", "state": "user-up"},
               "offline": {"session": "user-disabled", "state": "user-down"}}
MONITOR_TYPES = ("http", "tcp")
MAX_RATIO = 65535


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """A pool member.  ``admin``: enabled | disabled (no new sessions) | offline (forced)."""

    name: str            # 10.0.0.1:80, or 2001:db8::1.80
    address: str
    port: int
    ratio: int = 1
    priority_group: int = 0
    connection_limit: int = 0
    admin: str = "enabled"
    description: str = ""

    @property
    def draining_since(self) -> int | None:
        """When lbctl began to drain this member (it is no longer wanted), or None."""
        for token in self.description.split():
            if token.startswith(DRAIN) and token[len(DRAIN):].isdigit():
                return int(token[len(DRAIN):])
        return None


@dataclass(frozen=True, slots=True)
class MonitorSpec:
    """A custom health monitor (``type`` http or tcp) in the partition."""

    name: str
    type: str
    send: str = ""
    recv: str = ""
    interval: int = 5
    timeout: int = 16
    description: str = ""

    def settings(self) -> tuple:
        return (self.type, self.send, self.recv, self.interval, self.timeout)


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A pool.  ``monitor``: the rule as a full path (``/P/web_http``), or None."""

    name: str
    lb_mode: str = "round-robin"
    monitor: str | None = None
    min_active: int = 0
    description: str = ""
    members: tuple[MemberSpec, ...] = ()

    def settings(self) -> tuple:
        return (self.lb_mode, self.monitor, self.min_active)

    def member_map(self) -> dict[str, MemberSpec]:
        return {m.name: m for m in self.members}


@dataclass(frozen=True)
class DeviceState:
    """What was read from the device, for one partition (or AS3 tenant/application).

    ``nodes``, ``virtual_pools`` and ``connections`` are read only when a plan
    needs them (None, or a pool missing from ``connections``: not read).
    """

    partition: str                                   # "Common", or "Tenant/App" for AS3
    pools: Mapping[str, PoolSpec] = field(default_factory=dict)
    monitors: Mapping[str, MonitorSpec] = field(default_factory=dict)
    nodes: Mapping[str, str] | None = None           # node name -> its description
    virtual_pools: Mapping[str, str] | None = None   # pool name -> a virtual server using it
    connections: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # pool -> member -> conns


@dataclass(frozen=True)
class Wanted:
    """What lbctl wants in the partition: its pools and their monitors."""

    pools: Mapping[str, PoolSpec]
    monitors: Mapping[str, MonitorSpec]


def owner_mark(owner: str) -> str:
    return f"{OWNER}{owner}"


def owned(description: str, owner: str) -> bool:
    return owner_mark(owner) in description.split()


def full_path(partition: str, name: str) -> str:
    return f"/{partition}/{name}"


def member_name(address: str, port: int) -> str:
    """BIG-IP's member name: ``addr:port``, IPv6 ``addr.port``."""
    return f"{address}.{port}" if ":" in address else f"{address}:{port}"


def monitor_refs(rule: str | None) -> set[str]:
    """The monitor paths in a pool's monitor rule (``a and b``, ``min 1 of { a b }``)."""
    if not rule:
        return set()
    return {t for t in rule.replace("{", " ").replace("}", " ").split() if t.startswith("/")}


# -- from the model ------------------------------------------------------------------

def wanted(desired: model.Desired, partition: str, owner: str) -> Wanted:
    """The pools and monitors lbctl wants for ``desired``.

    :raises ConfigError: a member a BIG-IP cannot take, naming the pool and member.
    """
    pools, monitors = {}, {}
    for pool in desired.pools:
        mon = monitor_for(pool, owner)
        if mon is not None:
            monitors[mon.name] = mon
        pools[pool.name] = pool_for(pool, partition, owner, mon)
    return Wanted(pools, monitors)


def pool_for(pool: model.Pool, partition: str, owner: str, mon: MonitorSpec | None) -> PoolSpec:
    backups = any(m.state == "backup" for m in pool.members)
    ratios = len({m.weight for m in pool.members}) > 1
    members = []
    for m in pool.members:
        try:
            address = ipaddress.ip_address(m.address).compressed
        except ValueError:
            raise ConfigError(f"pools.{pool.name}: member {m.name}: address {m.address!r} is a host name; "
                              "the bigip target needs IP addresses") from None
        members.append(MemberSpec(
            name=member_name(address, m.port), address=address, port=m.port, ratio=m.weight,
            priority_group=(0 if m.state == "backup" else 1) if backups else 0,
            connection_limit=pool.maxconn or 0, admin=ADMIN[m.state], description=m.name))
    return PoolSpec(
        name=pool.name, lb_mode=LB_MODES[pool.balance][1 if ratios else 0],
        monitor=full_path(partition, mon.name) if mon else None, min_active=1 if backups else 0,
        description=owner_mark(owner), members=tuple(sorted(members, key=lambda x: x.name)))


def monitor_for(pool: model.Pool, owner: str) -> MonitorSpec | None:
    """The pool's health check as a monitor named ``<pool>_<type>`` (None: no check).

    Interval in whole seconds; timeout ``interval * fall + 1`` (F5's 3n+1 rule).
    """
    check = pool.health
    if check.type == "none":
        return None
    interval = max(1, math.ceil(check.interval_ms / 1000))
    send = recv = ""
    if check.type == "http":
        if check.host:
            send = f"GET {check.path} HTTP/1.1\\r\\nHost: {check.host}\\r\\nConnection: Close\\r\\n\\r\\n"
        else:
            send = f"GET {check.path} HTTP/1.0\\r\\n\\r\\n"
        recv = f"^HTTP/1\\.[01] {check.expect_status}"
    return MonitorSpec(name=f"{pool.name}_{check.type}", type=check.type, send=send, recv=recv,
                       interval=interval, timeout=interval * check.fall + 1, description=owner_mark(owner))


# -- from iControl REST JSON ---------------------------------------------------------

def parse_pool(raw: Mapping[str, Any]) -> PoolSpec:
    items = (raw.get("membersReference") or {}).get("items") or []
    members = tuple(sorted((parse_member(m) for m in items), key=lambda m: m.name))
    monitor = (raw.get("monitor") or "").strip() or None
    return PoolSpec(name=raw["name"], lb_mode=raw.get("loadBalancingMode", "round-robin"),
                    monitor=None if monitor == "none" else monitor,
                    min_active=int(raw.get("minActiveMembers", 0)),
                    description=raw.get("description", ""), members=members)


LIVE_STATES = {"up": "up", "fqdn-up": "up", "unchecked": "up", "down": "down", "user-down": "maint"}


def live_states(raw_pool: Mapping[str, Any]) -> dict[str, dict]:
    """A pool's members as the device reports them, by ``address:port``, for the operator page:
    ``state`` is the monitor's result (``up``, ``down``, ``unchecked``) or ``user-down`` (forced
    offline); a ``user-disabled`` session takes no new sessions (drain)."""
    out = {}
    for raw in (raw_pool.get("membersReference") or {}).get("items") or []:
        spec = parse_member(raw)
        state, session = raw.get("state", ""), raw.get("session", "")
        live = LIVE_STATES.get(state, "unknown")
        out[f"{spec.address}:{spec.port}"] = {"live": "drain" if live == "up" and session == "user-disabled" else live,
                                              "status": f"{state} {session}".strip(), "check": state, "sessions": None}
    return out


def parse_member(raw: Mapping[str, Any]) -> MemberSpec:
    name = raw["name"]
    sep = "." if name.count(":") > 1 else ":"
    node, _, port = name.rpartition(sep)
    if raw.get("state") == "user-down":
        admin = "offline"
    elif raw.get("session") == "user-disabled":
        admin = "disabled"
    else:
        admin = "enabled"
    return MemberSpec(name=name, address=raw.get("address", node), port=int(port) if port.isdigit() else 0,
                      ratio=int(raw.get("ratio", 1)), priority_group=int(raw.get("priorityGroup", 0)),
                      connection_limit=int(raw.get("connectionLimit", 0)), admin=admin,
                      description=raw.get("description", ""))


def parse_monitor(raw: Mapping[str, Any], mtype: str) -> MonitorSpec:
    http = mtype == "http"
    return MonitorSpec(name=raw["name"], type=mtype, send=raw.get("send", "") if http else "",
                       recv=raw.get("recv", "") if http else "", interval=int(raw.get("interval", 5)),
                       timeout=int(raw.get("timeout", 16)), description=raw.get("description", ""))


# -- to iControl REST bodies ---------------------------------------------------------

def pool_body(p: PoolSpec, partition: str, create: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"loadBalancingMode": p.lb_mode, "minActiveMembers": p.min_active}
    if p.monitor or not create:
        body["monitor"] = p.monitor or "none"
    if p.description:
        body["description"] = p.description
    if create:
        body = {"name": p.name, "partition": partition, **body,
                "members": [member_body(m, partition, True) for m in p.members]}
    return body


def member_body(m: MemberSpec, partition: str, create: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"ratio": m.ratio, "priorityGroup": m.priority_group,
                            "connectionLimit": m.connection_limit, **ADMIN_WRITE[m.admin],
                            "description": m.description}
    return {"name": m.name, "partition": partition, **body} if create else body


def monitor_body(m: MonitorSpec, partition: str, create: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"interval": m.interval, "timeout": m.timeout, "description": m.description}
    if m.type == "http":
        body.update(send=m.send, recv=m.recv)
    return {"name": m.name, "partition": partition, **body} if create else body


# -- as text (the "live" and "candidate" of a Change) -------------------------------

def state_text(pools: Mapping[str, PoolSpec], monitors: Mapping[str, MonitorSpec]) -> str:
    """One line per pool, member and monitor, sorted: what ``lbctl status`` hashes."""
    lines = []
    for name in sorted(monitors):
        m = monitors[name]
        lines.append(f"monitor {m.name} {m.type} interval={m.interval} timeout={m.timeout}"
                     + (f" send={m.send!r} recv={m.recv!r}" if m.type == "http" else ""))
    for name in sorted(pools):
        p = pools[name]
        lines.append(f"pool {p.name} {p.lb_mode} monitor={p.monitor or 'none'} min-active={p.min_active}")
        lines.extend(f"  member {member_text(m)}" for m in p.members)
    return "".join(line + "\n" for line in lines)


def member_text(m: MemberSpec) -> str:
    return (f"{m.name} ratio={m.ratio} priority={m.priority_group} limit={m.connection_limit} "
            f"{m.admin} {m.description!r}")


def served(text: str | None) -> guard.Served:
    """What a ``state_text`` serves, for the removal guard: pools and their enabled members."""
    pools: dict[str, set[str]] = {}
    pool = None
    for line in (text or "").splitlines():
        words = line.split()
        if line.startswith("pool ") and len(words) > 1:
            pool = pools.setdefault(words[1], set())
        elif line.startswith("  member ") and pool is not None and len(words) > 5 and words[5] == "enabled":
            pool.add(words[1])
    return guard.Served(frozenset(), {name: frozenset(m) for name, m in pools.items()})
