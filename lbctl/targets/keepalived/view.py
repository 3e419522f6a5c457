"""What keepalived.conf's template loops over: one VRRP instance per group of
virtual IPs, the IPs being the inventory's listener addresses.  Pure.

The fourth argument (the render cache of other kinds) carries this node's own
inputs, which the target reads at each plan: its ``target`` name (for the notify
hook) and ``auth_pass`` (read from its secret)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lbctl import model
from lbctl.errors import ConfigError

TEMPLATE = "keepalived.conf.j2"
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class Instance:
    name: str
    router_id: int
    vips: tuple[str, ...]  # address/prefix, sorted
    listeners: tuple[str, ...]  # the listeners whose addresses these are


def view(desired: model.Desired, options, _env, local):
    if not options.nodes:  # -t keepalived without a config: no pair to render
        raise ConfigError("a keepalived target's nodes come from lbctl.yml: lbctl render -c lbctl.yml -t TARGET")
    local = local or {}
    data = {"instances": instances(desired, options), "me": options.me, "peers": options.peers,
            "target": local.get("target", "keepalived"), "auth_pass": local.get("auth_pass"),
            "track": local.get("track", ()), "advert": seconds(options.advert_int_ms),
            "check_interval": seconds(options.check_interval_ms),
            "check_timeout": seconds(options.script_timeout_ms),
            "preempt_delay": seconds(options.preempt_delay_ms), "weight": options.weight}
    return TEMPLATE, data, lambda: None


def seconds(ms: int) -> str:
    """keepalived's seconds, with at most two decimals (``0.1``, ``1``)."""
    return f"{ms / 1000:.2f}".rstrip("0").rstrip(".")


def instances(desired: model.Desired, options) -> list[Instance]:
    """:raises ConfigError: a group names an unknown listener, a listener has no address
    of its own (a wildcard cannot be a virtual IP), or a VIP is of another family than the nodes."""
    vip_listeners = {lst.name: lst for lst in desired.listeners if lst.address not in WILDCARDS}
    if not vip_listeners:
        raise ConfigError("keepalived: no listener has an address of its own to be a virtual IP "
                          "(listeners on 0.0.0.0 or :: bind every address)")
    claimed = {name for g in options.groups for name in g.listeners}
    family = ipaddress.ip_address(options.me.address).version
    out = []
    for group in options.groups:
        for name in group.listeners:
            if name not in vip_listeners:
                raise ConfigError(f"groups.{group.name}.listeners: no listener {name!r} with an address of its own")
        names = group.listeners or tuple(n for n in sorted(vip_listeners) if n not in claimed)
        vips = sorted({_vip(vip_listeners[n], family) for n in names})
        if vips:
            out.append(Instance(group.name, group.router_id, tuple(vips), tuple(sorted(names))))
    return out


def _vip(listener: model.Listener, family: int) -> str:
    ip = ipaddress.ip_address(listener.address) if ":" in listener.address or listener.address[0].isdigit() else None
    if ip is None:
        raise ConfigError(f"listeners.{listener.name}.address: a virtual IP must be an IP address, not a host name "
                          f"(got {listener.address!r})")
    if ip.is_loopback or ip.is_link_local or ip.is_multicast:
        raise ConfigError(f"listeners.{listener.name}.address: {ip} cannot be a virtual IP (loopback, link-local "
                          "or multicast)")
    if ip.version != family:
        raise ConfigError(f"listeners.{listener.name}.address: {ip} is IPv{ip.version}, the nodes' addresses "
                          f"IPv{family} (a VRRP instance has one address family)")
    return f"{ip}/{ip.max_prefixlen}"
