"""The listener VirtualHosts of a rendered httpd.conf that serve a balancer-manager, and
the balancers each holds.  Pure.

Each VirtualHost keeps its own copy of the balancers it routes to (``BalancerInherit
Off``, each ``<Proxy>`` inside its ``<VirtualHost>``): a member added, weighted or
disabled through one VirtualHost's balancer-manager changes that copy only, so lbctl
makes every change in every VirtualHost holding the balancer (docs/apache.md#runtime-changes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VHOST = re.compile(r'^\s*<VirtualHost\s+(\S+)>')
SERVER_NAME = re.compile(r"^\s*ServerName\s+(\S+)")
BALANCER = re.compile(r'^\s*<Proxy\s+"balancer://([^"]+)">')
MANAGER = re.compile(r'^\s*<Location\s+"([^"]+)">')
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "[::]": "[::1]", "_default_": "127.0.0.1"}


@dataclass(frozen=True)
class VirtualHost:
    """Where lbctl reaches one VirtualHost's balancer-manager: ``address`` (host:port to
    connect to, on this machine), ``host`` (its ServerName: the Host header that selects
    it), ``path``, ``tls``, and the balancers it holds."""

    address: str
    host: str
    path: str
    tls: bool
    balancers: tuple[str, ...]

    def describe(self) -> str:
        return f"VirtualHost {self.host} on {self.address}"


def connect_to(bind: str) -> str:
    """The address lbctl connects to for a ``<VirtualHost ADDRESS:PORT>``: loopback for any address."""
    host, _, port = bind.rpartition(":")
    return f"{ANY_ADDRESS.get(host, host)}:{port}"


def managed(text: str | None, manager_path: str) -> list[VirtualHost]:
    """The VirtualHosts of ``text`` that serve balancer-manager on ``manager_path``."""
    out, current = [], None
    for line in (text or "").splitlines():
        if (m := VHOST.match(line)) is not None:
            current = {"address": connect_to(m.group(1)), "host": "", "tls": False, "balancers": [], "manager": False}
        elif current is None:
            continue
        elif (m := SERVER_NAME.match(line)) is not None:
            current["host"] = m.group(1)
        elif line.strip() == "SSLEngine on":
            current["tls"] = True
        elif (m := BALANCER.match(line)) is not None:
            current["balancers"].append(m.group(1))
        elif (m := MANAGER.match(line)) is not None and m.group(1) == manager_path:
            current["manager"] = True
        elif line.strip() == "</VirtualHost>":
            if current["manager"] and current["balancers"]:
                out.append(VirtualHost(current["address"], current["host"], manager_path, current["tls"],
                                       tuple(current["balancers"])))
            current = None
    return out
