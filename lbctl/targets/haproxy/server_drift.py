"""Runtime drift: where the servers HAProxy serves differ from the file in place.  Pure.

The running side is ``show servers state`` (rows with ``backend``, ``name``,
``addr``, ``port``, ``uweight``, ``maint`` and ``drain``: haproxy_ctl.ServerState),
the file side the ``server`` lines (haproxy_cfg.servers).  A server differs in its
admin state (enabled, drain, maint; the file knows enabled and ``disabled``, a
drained member is rendered with weight 0), its address and port (compared when
the file gives an IP address: a name is resolved by HAProxy), its weight, or by
being in one and not the other.  A server in maintenance in the file is compared
by its state only: lbctl sets address and weight when it enables one.  One in
maintenance that is not in the file takes no traffic: it is a server lbctl
deleted whose ``del server`` HAProxy refused while connections were attached
(gone at the next reload), not drift.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lbctl.targets.haproxy.cfg import Server, ServerChange

SHOWN = 5  # difference lines before "... and N more"


@dataclass(frozen=True)
class Difference:
    """One server that differs: ``file`` or ``running`` is None when it is only in the other."""

    backend: str
    server: str
    what: str
    file: Server | None
    running: object | None


def admin(row) -> str:
    return "maint" if row.maint else "drain" if row.drain else "enabled"


def same_address(server: Server, row) -> bool:
    """Whether the running address is the file's (True when the file names a host)."""
    if server.port == row.port and server.address == row.addr:
        return True  # as written: no parse (50,000 servers a drift check)
    try:
        wanted = ipaddress.ip_address(server.address)
        running = ipaddress.ip_address(row.addr)
    except ValueError:
        return True
    return wanted == running and server.port == row.port


def differences(server: Server, row) -> list[str]:
    """What differs between a server line and its running row, one phrase each."""
    wanted, running = ("maint" if server.disabled else "enabled"), admin(row)
    out = [f"{running} (file {wanted})"] if running != wanted else []
    if server.disabled:
        return out
    if not same_address(server, row):
        out.append(f"address {row.addr}:{row.port} (file {server.address}:{server.port})")
    if row.uweight != server.weight:
        out.append(f"weight {row.uweight} (file {server.weight})")
    return out


def compare(servers: dict[tuple[str, str], Server], rows) -> list[Difference]:
    """The servers that differ, in the file's order, then those that only run."""
    running = {(row.backend, row.name): row for row in rows}
    out = []
    for key, server in servers.items():
        row = running.pop(key, None)
        if row is None:
            out.append(Difference(*key, "is in the file but not running", server, None))
        elif what := differences(server, row):
            out.append(Difference(*key, ", ".join(what), server, row))
    out += [Difference(*key, f"runs ({row.addr}:{row.port}) but is not in the file", None, row)
            for key, row in running.items() if not row.maint]
    return out


def report(kind: str, path: str, found: list[Difference]) -> list[str]:
    """One drift line per server, the first ``SHOWN``, then a count of the others."""
    lines = [f"running {kind} differs from {path}: {d.backend}/{d.server} {d.what}" for d in found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"running {kind} differs from {path} in {len(found) - SHOWN} more servers")
    return lines


def repairs(found: list[Difference], dynamic: bool) -> list[ServerChange] | None:
    """The Runtime API changes that make the running servers the file's again, or
    None when a reload is needed: a server of the file that does not run, or (with
    slots, ``dynamic`` False) one that runs but is not in the file."""
    changes = []
    for d in found:
        server, row = d.file, d.running
        if server is None:
            if not dynamic:
                return None
            changes.append(ServerChange(d.backend, d.server, row.addr, row.port, row.uweight, "maint", False, "del"))
        elif row is None:
            return None
        else:
            state = "maint" if server.disabled else "ready"
            readdress = not server.disabled and not same_address(server, row)
            changes.append(ServerChange(d.backend, d.server, server.address, server.port, server.weight,
                                        state, readdress))
    return changes
