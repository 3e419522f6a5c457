"""Keep answering what is in flight when this node gives its virtual IPs up
(docs/high-availability.md#planned-switchover-lbctl-drain-node).

When keepalived takes a VIP off ``interface``, the connections this node still
serves on it can no longer send (their source address is gone): a response in
flight is lost and the client waits until it gives up.  So when an instance leaves
MASTER, ``lbctl vrrp-notify`` puts its VIPs on ``lo`` for ``HOLD`` seconds: the
responses go out, while the peer answers everything new (its gratuitous ARP has
moved the clients).  On ``lo`` this node must not answer ARP for them, which
``arp_ignore`` >= 1 on the interface ensures (else nothing is held)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

HOLD = 10.0  # seconds: far above a request in flight at the switch
INSTANCE = re.compile(r"vrrp_instance\s+(\S+)\s*\{")
ADDRESS = re.compile(r"([0-9A-Fa-f.:]+/\d+)\s+dev\s+\S+")
SYSCTL = Path("/proc/sys/net/ipv4/conf")


def vips(config_text: str) -> dict[str, list[str]]:
    """Each instance's ``virtual_ipaddress`` entries in a keepalived.conf lbctl rendered.  Pure."""
    out: dict[str, list[str]] = {}
    instance, inside = None, False
    for line in config_text.splitlines():
        line = line.strip()
        if m := INSTANCE.match(line):
            instance, inside = m.group(1), False
        elif instance and line.startswith("virtual_ipaddress"):
            inside = True
        elif inside and line == "}":
            inside = False
        elif inside and (m := ADDRESS.match(line)):
            out.setdefault(instance, []).append(m.group(1))
    return out


def arp_quiet(interface: str, sysctl: Path = SYSCTL) -> bool:
    """Whether this node answers ARP only for addresses on the interface asked (the larger
    of ``all`` and the interface's ``arp_ignore`` is what the kernel uses)."""
    values = []
    for name in ("all", interface):
        try:
            values.append(int((sysctl / name / "arp_ignore").read_text()))
        except (OSError, ValueError):
            values.append(0)
    return max(values) >= 1


def put(addresses: list[str], on: bool) -> list[str]:
    """Add (``on``) or delete ``addresses`` on ``lo``; the errors, one line each."""
    errors = []
    for address in addresses:
        done = subprocess.run(["ip", "addr", "add" if on else "del", address, "dev", "lo"],
                              capture_output=True, text=True, timeout=10)
        if done.returncode != 0 and not (on and "File exists" in done.stderr):
            errors.append(f"ip addr {'add' if on else 'del'} {address} dev lo: {done.stderr.strip()}")
    return errors
