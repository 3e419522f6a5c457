"""The settings of a ``kind: keepalived`` target in lbctl.yml (docs/high-availability.md).

One lbctl.yml per node (the same on both but for ``node``): ``nodes`` names every
node of the pair with its address and priority, ``node`` says which one this is.
The virtual IPs are the inventory's listener addresses (rendered by view.py);
``groups`` splits them into VRRP instances.  Only where the VRRP password is (an
environment variable or a file, lbctl.config.secrets) is kept here.  Pure.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lbctl.config import secrets
from lbctl.config import values as val

SHARED = False
KEYS = ("node", "nodes", "interface", "groups", "router_id", "advert_int", "vrrp_version", "nopreempt",
        "preempt_delay", "auth_pass_env", "auth_pass_file", "check_target", "check_interval", "check_fall",
        "check_rise", "check_weight", "script_timeout", "track_process", "drain_time", "forward_orphans", "lbctl",
        "lbctl_config", "pid_file", "drain_file")
PATHS = ("lbctl", "lbctl_config", "pid_file", "drain_file")  # relative to lbctl.yml, rendered absolute
NODE_KEYS = ("address", "priority", "status_url")
GROUP_KEYS = ("router_id", "listeners")
INTERFACE = re.compile(r"[A-Za-z0-9_.@-]{1,15}", re.ASCII)  # Linux: IFNAMSIZ - 1
WORD = re.compile(r'[^"\\\x00-\x1f\x7f]{1,4096}')  # one word of a track_process line, rendered quoted
STATUS_URL = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?", re.ASCII)


@dataclass(frozen=True)
class Node:
    name: str
    address: str  # its own address on the VRRP link: unicast_src_ip here, unicast_peer there
    priority: int
    status_url: str | None = None  # its lbctl watch's /vrrp (lbctl status of the pair)


@dataclass(frozen=True)
class Group:
    """One VRRP instance: the VIPs of ``listeners`` (all the others' if empty)."""

    name: str
    router_id: int
    listeners: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeepalivedOptions:
    node: str = ""
    nodes: tuple[Node, ...] = ()
    interface: str = "eth0"
    groups: tuple[Group, ...] = ()
    vrrp_version: int = 2
    advert_int_ms: int = 1000
    nopreempt: bool = False
    preempt_delay_ms: int = 0
    auth_pass_env: str | None = None
    auth_pass_file: Path | None = None
    check_target: str | None = None  # the load balancer target ``lbctl check`` checks
    check_interval_ms: int = 1000
    script_timeout_ms: int = 5000  # how long keepalived lets one ``lbctl check`` run
    check_fall: int = 2
    check_rise: int = 2
    check_weight: int | None = None  # 0: a failed check puts the node in FAULT; None: see ``weight``
    track_process: tuple[str, ...] | None = None  # the load balancer's command line; None: from check_target
    drain_time_ms: int = 15_000  # drain-node: the longest wait for kept-alive connections to close
    forward_orphans_ms: int = 0  # > 0: segments of connections unknown here go to the peer (orphans.py)
    lbctl: str = "/usr/local/bin/lbctl"
    lbctl_config: str = "/etc/lbctl/lbctl.yml"
    pid_file: str = "/run/keepalived.pid"
    drain_file: str = "/var/lib/lbctl/keepalived.drain"

    @property
    def me(self) -> Node:
        return next(n for n in self.nodes if n.name == self.node)

    @property
    def peers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.name != self.node)

    @property
    def spread(self) -> int:
        """How far apart the priorities are: a failed check must lower a node by more."""
        return max(n.priority for n in self.nodes) - min(n.priority for n in self.nodes)

    @property
    def weight(self) -> int:
        """What a failed check does to the priority: ``check_weight``, else 0 (FAULT) with
        ``nopreempt`` (a lowered priority moves nothing then), else the spread + 10 below."""
        if self.check_weight is not None:
            return self.check_weight
        return 0 if self.nopreempt else -min(self.spread + 10, 253)

    @property
    def authenticated(self) -> bool:
        return self.auth_pass_env is not None or self.auth_pass_file is not None

    def auth_pass(self, path: str = "auth_pass") -> str:
        """Read when rendering, never stored.  :raises ConfigError: naming the key."""
        return secrets.read(self.auth_pass_env, self.auth_pass_file, path.rsplit(".", 1)[0], "auth_pass")


@dataclass(frozen=True)
class KeepalivedSettings:
    options: KeepalivedOptions = field(default_factory=KeepalivedOptions)


def options(raw: Mapping[str, Any] | None = None, path: str = "options") -> KeepalivedOptions:
    """Without a config (``lbctl render -t keepalived``) there is no pair to render."""
    if raw:
        raise val.fail(path, "a keepalived target is configured in lbctl.yml only")
    return KeepalivedOptions()


def parse(data: Mapping[str, Any], path: str, base: Path) -> KeepalivedSettings:
    """:raises ConfigError: a bad value, naming its key path."""
    d = KeepalivedOptions()
    nodes = val.v.named(val.required(f"{path}.nodes") if data.get("nodes") is None else data["nodes"],
                        f"{path}.nodes", _node)
    node = val.ident(data.get("node"), f"{path}.node")
    if node not in {n.name for n in nodes}:
        raise val.fail(f"{path}.node", f"must be one of nodes ({', '.join(n.name for n in nodes)})", node)
    if len(nodes) < 2:
        raise val.fail(f"{path}.nodes", "must name at least two nodes (this one and its peers)")
    env, file = secrets.where(data, "auth_pass", path, base, required=False)
    version = val.optional(data, "vrrp_version", path, val.integer, d.vrrp_version, 2, 3)
    opts = KeepalivedOptions(
        node=node, nodes=nodes, auth_pass_env=env, auth_pass_file=file, vrrp_version=version,
        interface=val.optional(data, "interface", path, val.pattern, d.interface, INTERFACE, "an interface name"),
        groups=_groups(data, path),
        advert_int_ms=_advert(data, path, version),
        nopreempt=val.optional(data, "nopreempt", path, val.boolean, d.nopreempt),
        preempt_delay_ms=val.optional(data, "preempt_delay", path, val.duration, d.preempt_delay_ms),
        check_target=val.optional(data, "check_target", path, val.ident, d.check_target),
        check_interval_ms=val.optional(data, "check_interval", path, val.duration, d.check_interval_ms),
        script_timeout_ms=val.optional(data, "script_timeout", path, val.duration, d.script_timeout_ms),
        check_fall=val.optional(data, "check_fall", path, val.integer, d.check_fall, 1, 100),
        check_rise=val.optional(data, "check_rise", path, val.integer, d.check_rise, 1, 100),
        check_weight=val.optional(data, "check_weight", path, val.integer, d.check_weight, -253, 0),
        track_process=_track(data.get("track_process"), f"{path}.track_process"),
        drain_time_ms=val.optional(data, "drain_time", path, val.duration, d.drain_time_ms, True),
        forward_orphans_ms=val.optional(data, "forward_orphans", path, val.duration, d.forward_orphans_ms, True),
        **{k: val.optional({k: val.resolve_text(base, data.get(k))}, k, path, val.rendered_path, getattr(d, k))
           for k in PATHS})
    _consistent(opts, path)
    return KeepalivedSettings(opts)


def _node(name: str, raw: Any, path: str) -> Node:
    data = val.section(raw, path, NODE_KEYS, ("address", "priority"))
    url = val.optional(data, "status_url", path, val.pattern, None, STATUS_URL, "an http:// URL")
    return Node(name, val.v.ip(data["address"], f"{path}.address"),
                val.integer(data["priority"], f"{path}.priority", 1, 254), url)


def _groups(data: Mapping, path: str) -> tuple[Group, ...]:
    router_id = val.optional(data, "router_id", path, val.integer, 51, 1, 255)
    if data.get("groups") is None:
        return (Group("vip", router_id),)

    def group(name: str, raw: Any, where: str) -> Group:
        body = val.section(raw, where, GROUP_KEYS, ("router_id",))
        names = tuple(val.ident(x, f"{where}.listeners[{i}]")
                      for i, x in enumerate(val.sequence(body.get("listeners") or [], f"{where}.listeners")))
        return Group(name, val.integer(body["router_id"], f"{where}.router_id", 1, 255), names)

    groups = val.v.named(data["groups"], f"{path}.groups", group)
    ids = [g.router_id for g in groups]
    if len(set(ids)) != len(ids):
        raise val.fail(f"{path}.groups", "must give each group its own router_id")
    if sum(not g.listeners for g in groups) > 1:
        raise val.fail(f"{path}.groups", "may leave listeners out of one group only (it takes the rest)")
    return groups


def _track(raw: Any, path: str) -> tuple[str, ...] | None:
    """``false``: no process tracked; a string: the first words of the load balancer's
    command line (the program as started, then its parameters); absent: from check_target."""
    if raw is None or raw is False:
        return None if raw is None else ()
    if not isinstance(raw, str):
        raise val.fail(path, "must be the first words of the load balancer's command line, or false", raw)
    try:
        words = tuple(shlex.split(raw))
    except ValueError as exc:
        raise val.fail(path, f"cannot be split into words ({exc})", raw) from None
    bad = next((w for w in words if not WORD.fullmatch(w)), None)
    if not words or bad is not None:
        raise val.fail(path, "must be words without double quotes, backslashes or control characters", raw)
    return words


def _advert(data: Mapping, path: str, version: int) -> int:
    ms = val.optional(data, "advert_int", path, val.duration, 1000)
    if version == 2 and ms % 1000:
        raise val.fail(f"{path}.advert_int", "must be whole seconds with vrrp_version 2 (VRRPv3 takes 10ms steps)",
                       data.get("advert_int"))
    if ms % 10 or ms > 255_000:
        raise val.fail(f"{path}.advert_int", "must be 10ms steps up to 255s", data.get("advert_int"))
    return ms


def _consistent(opts: KeepalivedOptions, path: str) -> None:
    for key in ("check_interval", "script_timeout"):  # keepalived reads whole seconds here
        if getattr(opts, f"{key}_ms") % 1000:
            raise val.fail(f"{path}.{key}", "must be whole seconds (keepalived reads no fraction here)",
                           f"{getattr(opts, f'{key}_ms')}ms")
    if opts.preempt_delay_ms > 1_000_000:
        raise val.fail(f"{path}.preempt_delay", "must be at most 1000s (keepalived's limit)")
    if opts.nopreempt and opts.preempt_delay_ms:
        raise val.fail(f"{path}.preempt_delay", "means nothing with nopreempt (the VIPs are never taken back)")
    if opts.authenticated and opts.vrrp_version == 3:
        raise val.fail(f"{path}.auth_pass_env", "VRRPv3 has no authentication (RFC 5798); use vrrp_version 2")
    if opts.nopreempt and opts.weight:
        raise val.fail(f"{path}.check_weight", "must be 0 with nopreempt (a lowered priority moves nothing: "
                       "a failed check puts the node in FAULT)", opts.check_weight)
    if opts.weight and -opts.weight <= opts.spread:
        raise val.fail(f"{path}.check_weight", f"must lower a node below its peers: more than {opts.spread} "
                       "(the spread of the priorities) below zero, or 0 (FAULT)", opts.check_weight)
    if len({n.address for n in opts.nodes}) != len(opts.nodes):
        raise val.fail(f"{path}.nodes", "must give each node its own address")
    if opts.forward_orphans_ms and (len(opts.nodes) != 2 or any(":" in n.address for n in opts.nodes)):
        raise val.fail(f"{path}.forward_orphans", "needs a pair: two nodes with IPv4 addresses (orphan segments "
                       "go to the one peer)")
