"""Which services changed, from two readings of ``/v1/health/state/any``.  Pure.

Consul's blocking indexes are per table: one query on every check in the
datacenter wakes on any check change, and the checks written since the previous
answer's index (``ModifyIndex`` above it), added or removed name the services to
read again.  A node's own checks (``ServiceName`` empty: ``serfHealth``, node
maintenance) concern every service on that node.

The answer holds every check of the datacenter (about 15 MB at 10,000 services ×
5 instances) and comes with every change, but one change rewrites a few checks of
it, and Consul writes them in a stable order (node, then check ID).  So a new answer
is compared with the previous one byte by byte (C-speed bisection, as
``textdiff``): the stretch where they differ, widened to the checks it touches
(the end offset of each check of the previous answer is kept), is the only part
decoded, with msgspec, into structs of the seven fields used here.  Outside the
stretch the bytes are those of the previous answer, which was decoded (or so
checked) before, so the new answer is a valid list of checks whenever the stretch
is.  The first answer, or one that cannot be placed against the previous one, is
decoded whole.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

import msgspec

from lbctl import textdiff


class Check(msgspec.Struct, frozen=True, gc=False):
    Node: str = ""
    CheckID: str = ""
    ServiceName: str = ""
    ServiceID: str = ""
    Status: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0


Table = dict[tuple[str, str], Check]
FULL = msgspec.json.Decoder(list[Check])
RAW = msgspec.json.Decoder(list[msgspec.Raw])


class Reading:
    """One answer: its checks and where each ends in the body, or (against ``book``,
    the previous answers) only the changed stretch: ``patch``."""

    def __init__(self, body: bytes, book: Book | None = None) -> None:
        """:raises msgspec.DecodeError: not a list of checks."""
        self.body = body
        self.base = book.body if book is not None else None  # the body ``patch`` is against
        self.patch = book.patch(body) if book is not None else None
        if self.patch is None:
            self.base, self.rows = None, FULL.decode(body)
            self.ends = ends(body, RAW.decode(body), 0, len(body) - 1)

    def checks(self) -> list[Check]:
        return self.rows if self.patch is None else FULL.decode(self.body)


@dataclass
class Patch:
    """Checks ``first``..``last`` (exclusive) of the previous answer are ``rows`` now,
    ending at ``ends``; the checks after them moved by ``shift`` bytes."""

    first: int
    last: int
    rows: list[Check]
    ends: list[int]
    shift: int


def ends(body: bytes, raws: list[msgspec.Raw], start: int, stop: int) -> list[int]:
    """Where each of ``raws``, decoded from ``body[start:]``, ends in ``body``; ``stop``:
    where the last one ends if the JSON is compact (Consul's: one byte before each check)."""
    out, pos = [], start
    for raw in raws:
        pos += len(raw) + 1
        out.append(pos)
    if pos == stop:  # every gap is one byte, the least it can be: no other offsets fit
        return out
    out, pos = [], start
    for raw in raws:  # whitespace between them: find each
        piece = bytes(raw)
        pos = body.index(piece, pos) + len(piece)
        out.append(pos)
    return out


def table(rows: list[Check]) -> Table:
    return {(c.Node, c.CheckID): c for c in rows}


@dataclass
class Diff:
    services: set[str] = field(default_factory=set)  # services whose own checks changed
    nodes: set[str] = field(default_factory=set)  # nodes whose node checks changed
    indexes: set[int] = field(default_factory=set)  # ModifyIndex (and CreateIndex) of new or changed checks
    removed: bool = False  # some check went away (its index is not known)

    def __bool__(self) -> bool:
        return bool(self.services or self.nodes or self.removed)


def diff(old: Table, new: Table, since: int) -> Diff:
    """Checks added, removed, or written after index ``since`` (0: compare every field)."""
    out = Diff()
    for key, check in new.items():
        before = old.get(key)
        if before is None or (check.ModifyIndex > since if since else before != check):
            note(out, check)
            out.indexes.add(check.ModifyIndex)
            if before is None:  # registered at CreateIndex, perhaps changed since
                out.indexes.add(check.CreateIndex)
            elif before.ServiceName != check.ServiceName:
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


class Book:
    """The last answer (its body, checks, and where each ends), and what changed in each new one.

    A check that changes length moves every check after it: instead of adding the shift
    to each of 50,000 offsets, the shift is kept (``shifts``: from which check, by how
    much) and added where an offset is read, until ``SHIFTS_KEPT`` of them are applied
    at once.
    """

    SHIFTS_KEPT = 32

    def __init__(self, reading: Reading) -> None:
        self.body, self.rows = reading.body, reading.checks()
        self.raw, self.shifts = reading.ends, []  # check i ends at raw[i] + the shifts from i or before

    @property
    def ends(self) -> list[int]:
        """Where each check of the last answer ends in its body."""
        self.settle()
        return self.raw

    def end(self, i: int) -> int:
        return self.raw[i] + sum(by for at, by in self.shifts if at <= i)

    def settle(self) -> None:
        """Apply the shifts kept, in one pass over the offsets (each shift applied on its
        own rewrote every offset after it: 32 passes over 50,000 offsets, 100 ms holding
        the GIL at 10,000 services, which the change being applied then waited for)."""
        raw, marks, total = self.raw, sorted(self.shifts), 0
        for k, (at, by) in enumerate(marks):
            total += by
            end = marks[k + 1][0] if k + 1 < len(marks) else len(raw)
            if total and end > at:
                raw[at:end] = [e + total for e in raw[at:end]]
        self.shifts = []

    def patch(self, body: bytes) -> Patch | None:
        """The stretch of ``body`` that differs from the last answer's, decoded; None
        if it cannot be placed (then decode ``body`` whole).

        :raises msgspec.DecodeError: the stretch is not checks.
        """
        old, n = self.body, len(self.rows)
        if not n or not body.endswith(b"]"):
            return None
        if body == old:
            return Patch(0, 0, [], [], 0)
        same = textdiff.common_prefix(old, body)
        tail = textdiff.common_suffix(old, body, min(len(old), len(body)) - same)
        at = range(n)
        first = bisect_right(at, same, key=self.end)  # the first check whose bytes are not all in the prefix
        last = bisect_left(at, len(old) - tail, key=self.end) + 1  # one past the last check that reaches the suffix
        if last > n:
            return None  # the bytes after the last check differ
        lo = self.end(first - 1) if first else 0  # from the separator before check ``first``
        hi, shift = self.end(last - 1), len(body) - len(old)  # to the end of check ``last - 1``
        region = body[lo:hi + shift].strip()
        if region and region[:1] != (b"," if first else b"["):
            return None
        text = b"[" + region[1:] + b"]"  # the checks of the stretch (none if it is empty)
        raws = RAW.decode(text)
        return Patch(first, last, FULL.decode(text), ends(body, raws, lo, hi + shift), shift)

    def update(self, reading: Reading, since: int) -> Diff:
        """What changed after index ``since`` (0 after an index reset: compare every field)."""
        p = reading.patch if reading.base is self.body else None
        if p is None:
            if reading.patch is not None:  # against an older answer than this one
                reading = Reading(reading.body)
            out = diff(table(self.rows), table(reading.rows), since)
            self.body, self.rows, self.raw, self.shifts = reading.body, reading.rows, reading.ends, []
            return out
        out = diff(table(self.rows[p.first:p.last]), table(p.rows), since)
        self.place(p)
        self.body = reading.body
        return out

    def place(self, p: Patch) -> None:
        """Put the patch's checks and offsets in place of checks ``p.first``..``p.last``."""
        after = p.first + len(p.rows)  # where the checks after the patch are now
        moved = after - p.last
        # A shift kept from within the patch still applies to the checks after it; those
        # checks' indexes move with the number of checks the patch added or removed.
        self.shifts = [(at if at <= p.first else max(at + moved, after), by) for at, by in self.shifts]
        base = sum(by for at, by in self.shifts if at <= p.first)
        self.raw[p.first:p.last] = [e - base for e in p.ends]
        self.rows[p.first:p.last] = p.rows
        if p.shift:
            self.shifts.append((after, p.shift))
        if len(self.shifts) > self.SHIFTS_KEPT:
            self.settle()


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
