"""A dns target's plan: what it read of the zone against what it wants.  Pure.

``plan`` checks ownership first (a name whose ownership TXT RRset names another
owner, or an RRset lbctl wants that exists without lbctl's ownership record, is a
``ConfigError``: lbctl never edits records it did not create), then keeps the last
serving records of a name that would answer nothing, then lists the RRsets that
change.  Each ``Op`` keeps the RRset as read, which the UPDATE message sends as
its prerequisite: a compare-and-swap on what lbctl read (docs/dns.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from lbctl.errors import ConfigError
from lbctl.targets.dns import records as rec
from lbctl.targets.dns.records import ADDRESS_TYPES, Key, Name, RRset, State


@dataclass(frozen=True)
class Op:
    """One RRset's change: ``old`` as read (None: absent), ``new`` (None: deleted)."""

    key: Key
    old: RRset | None
    new: RRset | None
    name: str = ""  # the published name it belongs to (an UPDATE never splits a name)


@dataclass(frozen=True)
class Plan:
    ops: tuple[Op, ...]
    before: State  # every RRset lbctl owned, as read
    after: State   # every RRset lbctl will own
    summary: tuple[str, ...]
    serial: int | None = None  # the zone's SOA serial when read

    @property
    def noop(self) -> bool:
        return not self.ops


def plan(zone: State, names: dict[str, Name], owner: str, ttl: int, serial: int | None = None) -> Plan:
    """:raises ConfigError: a name or an RRset lbctl wants belongs to someone else."""
    mine = rec.names_of(zone, owner)
    check_ownership(zone, names, mine, owner)
    before = {k: zone[k] for name in mine.values() for k in (*name.rrsets, (name.registry, "TXT"))}
    notes = [note for name in names.values() if (note := keep_last(name, mine.get(name.node)))]
    after = rec.flatten(names, ttl)
    belongs = {k: name.node for group in (mine, names) for name in group.values()
               for k in (*name.rrsets, (name.registry, "TXT"))}
    ops = tuple(Op(k, before.get(k), after.get(k), belongs[k]) for k in sorted(before.keys() | after.keys())
                if before.get(k) != after.get(k))
    return Plan(ops, before, after, tuple(summary(ops)) + tuple(f"= {n}" for n in notes), serial)


def check_ownership(zone: State, names: dict[str, Name], mine: dict[str, Name], owner: str) -> None:
    ours = {k for name in mine.values() for k in name.rrsets}
    types: dict[str, list[str]] = {}  # node -> the types the zone has there
    for node, rtype in zone:
        types.setdefault(node, []).append(rtype)
    claimed: dict[Key, str] = {}
    for name in names.values():
        reg = zone.get((name.registry, "TXT"))
        found = rec.registry(reg) if reg is not None else None
        if reg is not None and found is None:
            raise ConfigError(f"{name.node} (pool {name.pool}): {name.registry} holds TXT records lbctl did not "
                              "write; refusing to take the name over")
        if found is not None and found[0] != owner:
            raise ConfigError(f"{name.node} (pool {name.pool}) is owned by another lbctl (owner id {found[0]!r}, "
                              f"TXT {name.registry}); this target's owner is {owner!r}")
        for key in name.rrsets:
            if key in claimed:
                raise ConfigError(f"{key[0]} {key[1]} is published by both {claimed[key]} and {name.node}")
            claimed[key] = name.node
            if key in zone and key not in ours:
                raise ConfigError(f"{key[0]} {key[1]} exists in the zone and was not created by lbctl "
                                  f"(no ownership record lists it); refusing to change it (pool {name.pool})")
        for node in {n for n, _ in name.rrsets}:
            foreign = sorted(t for t in types.get(node, ()) if (node, t) not in ours)
            cname = (node, "CNAME") in name.rrsets
            if foreign and (cname or "CNAME" in foreign):
                raise ConfigError(f"{node}: a CNAME cannot share its name with other records, and the zone has "
                                  f"{', '.join(foreign)} there that lbctl did not create (pool {name.pool})")


def keep_last(name: Name, current: Name | None) -> str | None:
    """Never empty a serving name: if no member serves, keep what it answered with (and
    the last SRV records and their targets).  What was kept, in words, or None."""
    if current is None:
        return None
    kept = []
    answers = [k for k in (*name.rrsets, *name.empty) if k[0] == name.node and k[1] in ADDRESS_TYPES]
    if answers and not any(k in name.rrsets for k in answers):
        old = {k: s for k, s in current.rrsets.items() if k[0] == name.node and k[1] in ADDRESS_TYPES}
        name.rrsets.update(old)
        kept += [r for s in old.values() for r in s.rdatas]
    for key in sorted(k for k in name.empty if k[1] == "SRV" and k in current.rrsets):
        srv = current.rrsets[key]
        name.rrsets[key] = srv
        targets = {r.split()[3] for r in srv.rdatas}
        name.rrsets.update({k: s for k, s in current.rrsets.items() if k[0] in targets})
        kept += [f"SRV {r}" for r in srv.rdatas]
    if not kept:
        return None
    return f"{name.node}: no member of pool {name.pool} serves; keeping the last serving records ({', '.join(kept)})"


def summary(ops: tuple[Op, ...]) -> list[str]:
    """One line per record added (+) or removed (-), and per TTL changed (~)."""
    lines = []
    for op in ops:
        node, rtype = op.key
        old = set(op.old.rdatas) if op.old else set()
        new = set(op.new.rdatas) if op.new else set()
        lines += [f"+ {node} {rtype} {r}" for r in sorted(new - old)]
        cached = f" (cached answers may still reach it for up to {op.old.ttl}s)" if op.old and rtype in ("A", "AAAA") else ""
        lines += [f"- {node} {rtype} {r}{cached}" for r in sorted(old - new)]
        if op.old and op.new and op.old.ttl != op.new.ttl:
            lines.append(f"~ {node} {rtype} ttl {op.old.ttl} -> {op.new.ttl}")
    return lines
