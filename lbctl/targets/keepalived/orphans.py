"""``forward_orphans``: a TCP segment to a VIP that belongs to no connection this node
knows (not a SYN, not a reset: conntrack says ``invalid``) is sent to the peer
instead of being answered with a reset.  The peer keeps the VIPs on ``lo``, so it
takes the segment, and if the connection is its own (a client took in the new
master's gratuitous ARP between its handshake with the old one and its request) it
answers the client itself, from the VIP
(docs/high-availability.md#forwarding-orphan-segments).

When: for the VIPs of each instance this node is BACKUP for (armed before a
takeover, so the first segment after the gratuitous ARP is covered), and for
``forward_orphans`` after it became MASTER (nft set elements that time out): a
dead peer would otherwise swallow what should be reset.  Never in FAULT.

How: an nftables table per target, replaced whole in one transaction at each
state change and apply: conntrack only for the VIPs' traffic (``notrack`` for the
rest), and the rule.  A copy leaves with TTL 1 and one with TTL 1 is not sent on
again, so two nodes never pass a segment back and forth.  The sysctls make
conntrack say ``invalid`` of a segment that starts no connection
(``nf_conntrack_tcp_loose`` 0) and of nothing else (``nf_conntrack_tcp_be_liberal``
1: no window tracking), and forget a closed connection after 1 s instead of 120
(``nf_conntrack_tcp_timeout_time_wait``): a client that makes a new connection from
the same port with the peer meanwhile would otherwise find the old entry, and be
reset (or, with a TIME-WAIT socket, left waiting) instead of handed on.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from lbctl.errors import CommandError, ValidationError
from lbctl.targets.process import locate, run

NFT_TIMEOUT = 10.0
SYSCTLS = {"net/netfilter/nf_conntrack_tcp_loose": "0", "net/netfilter/nf_conntrack_tcp_be_liberal": "1",
           "net/netfilter/nf_conntrack_tcp_timeout_time_wait": "1"}
INSTANCE = re.compile(r"vrrp_instance (\S+) \{")
ADDRESS = re.compile(r"(\d+\.\d+\.\d+\.\d+)/32\b")


def table(target: str) -> str:
    return f"lbctl_{target}"


def instance_vips(conf: str) -> dict[str, list[str]]:
    """Each ``vrrp_instance``'s IPv4 VIPs (its ``virtual_ipaddress`` block) in a keepalived.conf
    lbctl rendered.  Pure."""
    out: dict[str, list[str]] = {}
    name, inside = None, False
    for line in conf.splitlines():
        text = line.strip()
        if m := INSTANCE.match(text):
            name, out[m.group(1)] = m.group(1), []
        elif name and text.startswith("virtual_ipaddress {"):
            inside = True
        elif inside and text == "}":
            inside = False
        elif inside and (m := ADDRESS.match(text)):
            out[name].append(m.group(1))
    return out


def armed(conf: str, states: dict[str, str], after_master_ms: int) -> list[str]:
    """The set's elements: the VIPs of each BACKUP instance, and those of each MASTER one
    with a timeout.  Pure."""
    out = []
    for name, addresses in sorted(instance_vips(conf).items()):
        if states.get(name) == "BACKUP":
            out += addresses
        elif states.get(name) == "MASTER":
            out += [f"{a} timeout {after_master_ms}ms" for a in addresses]
    return out


def ruleset(target: str, conf: str, elements: list[str], peer: str, interface: str) -> str:
    """The nft script that replaces the target's table.  Pure."""
    name = table(target)
    vips = sorted({a for addresses in instance_vips(conf).values() for a in addresses})

    def items(values: list[str]) -> str:
        return f"        elements = {{ {', '.join(values)} }}\n" if values else ""
    return (f"table ip {name} {{}}\ndelete table ip {name}\n"
            f"table ip {name} {{\n"
            f"    set vips {{\n        type ipv4_addr\n{items(vips)}    }}\n"
            f"    set forward {{\n        type ipv4_addr\n        flags timeout\n{items(elements)}    }}\n"
            "    chain untracked_in {\n        type filter hook prerouting priority raw; policy accept;\n"
            "        ip daddr != @vips notrack\n    }\n"
            "    chain untracked_out {\n        type filter hook output priority raw; policy accept;\n"
            "        ip saddr != @vips notrack\n    }\n"
            "    chain orphans {\n        type filter hook prerouting priority mangle; policy accept;\n"
            f'        iifname "{interface}" ip daddr @forward tcp flags & (syn | rst) == 0 ct state invalid '
            f'ip ttl != 1 ip ttl set 1 dup to {peer} device "{interface}" drop\n'
            "    }\n}\n")


def available() -> bool:
    """Whether nft is installed (on PATH or in the sbin directories)."""
    return bool(shutil.which("nft")) or Path(locate("nft")).is_absolute()


def check(target: str, options, conf: str) -> None:
    """nft's own check of the table for ``conf`` (``nft -c``).  :raises ValidationError: no nft, or refused."""
    if not available():
        raise ValidationError(f"{target}: forward_orphans needs nft (the Debian package nftables)")
    script = ruleset(target, conf, armed(conf, {}, options.forward_orphans_ms), options.peers[0].address,
                     options.interface)
    done = run(["nft", "-c", "-f", "-"], input=script, timeout=NFT_TIMEOUT)
    if done.returncode != 0:
        raise ValidationError(f"{target}: nft refused the forward_orphans table: {done.output.strip()[-500:]}")


def install(target: str, options, conf: str, states: dict[str, str], proc: Path = Path("/proc/sys")) -> str:
    """Set the sysctls and replace the table; what it does.  :raises CommandError: refused."""
    for key, value in SYSCTLS.items():
        try:
            (proc / key).write_text(value)
        except OSError as exc:
            raise CommandError(f"forward_orphans: cannot set {key.replace('/', '.')} = {value}: {exc}") from None
    elements = armed(conf, states, options.forward_orphans_ms)
    script = ruleset(target, conf, elements, options.peers[0].address, options.interface)
    done = run(["nft", "-f", "-"], input=script, timeout=NFT_TIMEOUT)
    if done.returncode != 0:
        raise CommandError(f"forward_orphans: nft refused the table {table(target)}: {done.output.strip()[-500:]}")
    return said(elements, options)


def arm(target: str, options, conf: str, states: dict[str, str]) -> str:
    """At a state change: only the set's elements change (one transaction), if the table
    is there; else ``install``.  :raises CommandError: refused."""
    elements = armed(conf, states, options.forward_orphans_ms)
    name = table(target)
    script = f"flush set ip {name} forward\n" + (
        f"add element ip {name} forward {{ {', '.join(elements)} }}\n" if elements else "")
    if run(["nft", "-f", "-"], input=script, timeout=NFT_TIMEOUT).returncode != 0:
        return install(target, options, conf, states)
    return said(elements, options)


def said(elements: list[str], options) -> str:
    return f"segments of connections unknown here to {len(elements)} VIP(s) go to {options.peers[0].address}"


def remove(target: str) -> None:
    """Delete the table if it is there (the option was turned off)."""
    if run(["nft", "list", "table", "ip", table(target)], timeout=NFT_TIMEOUT).returncode == 0:
        done = run(["nft", "delete", "table", "ip", table(target)], timeout=NFT_TIMEOUT)
        if done.returncode != 0:
            raise CommandError(f"forward_orphans: nft could not delete {table(target)}: {done.output.strip()[-500:]}")
