"""Which services changed, from two readings of ``/v1/health/state/any``.  Pure.

Consul's blocking indexes are per table: one query on every check in the
datacenter wakes on any check change, and the difference between two answers,
check by check (``(Node, CheckID)`` → service, status, ``ModifyIndex``), names the
services to read again.  A node's own checks (``ServiceName`` empty: ``serfHealth``,
node maintenance) concern every service on that node.

The answer holds every check of the datacenter (about 17 MB at 10,000 services ×
5 instances): it is decoded by msgspec into small structs that keep only these
fields, about five times faster than ``json.loads`` into dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec


class Check(msgspec.Struct, frozen=True, gc=False):
    Node: str = ""
    CheckID: str = ""
    ServiceName: str = ""
    ServiceID: str = ""
    Status: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0


Table = dict[tuple[str, str], Check]
DECODE = msgspec.json.Decoder(list[Check])


def table(body: bytes) -> Table:
    """:raises msgspec.DecodeError: not a list of checks."""
    return {(c.Node, c.CheckID): c for c in DECODE.decode(body)}


@dataclass
class Diff:
    services: set[str] = field(default_factory=set)  # services whose own checks changed
    nodes: set[str] = field(default_factory=set)  # nodes whose node checks changed
    indexes: set[int] = field(default_factory=set)  # ModifyIndex of every new or changed check
    removed: bool = False  # some check went away (its index is not known)

    def __bool__(self) -> bool:
        return bool(self.services or self.nodes or self.removed)


def diff(old: Table, new: Table) -> Diff:
    out = Diff()
    for key, check in new.items():
        before = old.get(key)
        if before != check:
            note(out, check)
            out.indexes.add(check.ModifyIndex)
            if before is None:  # registered at CreateIndex, perhaps changed since
                out.indexes.add(check.CreateIndex)
            if before is not None and before.ServiceName != check.ServiceName:
                note(out, before)
    for key in old.keys() - new.keys():
        note(out, old[key])
        out.removed = True
    return out


def note(out: Diff, check: Check) -> None:
    if check.ServiceName:
        out.services.add(check.ServiceName)
    else:
        out.nodes.add(check.Node)


class Marks:
    """What the checks feed saw, so that a services-table index can be explained.

    A registration with checks writes the service and its checks at one raft index
    (their ``ModifyIndex``); a deregistration deletes them at one index, seen as a
    removal in the window between two readings.  Bounded: the oldest are dropped.
    """

    KEEP = 4096

    def __init__(self) -> None:
        self.indexes: dict[int, None] = {}
        self.windows: list[tuple[int, int]] = []  # (after, up to) of readings that removed checks
        self.index = 0  # the checks feed's index

    def add(self, d: Diff, before: int, index: int) -> None:
        self.indexes.update(dict.fromkeys(sorted(d.indexes)))
        if d.removed:
            self.windows.append((before, index))
        self.index = index
        while len(self.indexes) > self.KEEP:
            del self.indexes[next(iter(self.indexes))]
        del self.windows[:-self.KEEP]

    def explains(self, index: int) -> bool:
        return index in self.indexes or any(lo < index <= hi for lo, hi in self.windows)
