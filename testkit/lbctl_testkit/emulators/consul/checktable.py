"""Every check record in Consul's order, with its JSON encoded once until it changes.

``/v1/health/state/any`` returns every check of the datacenter (50,000 at 10,000
services × 5 instances) and a watcher re-reads it after every change, so the
emulator keeps the records sorted by (node, check ID), the order of Consul's
``checks`` table, next to their encoded JSON: a read is a join of cached bytes (in
C once every record has been encoded), a status change re-encodes one record, a
registration is one sorted insert; and the join of every record can be finished
outside the store's lock (``select_later``), so that a small answer woken by the same
write is not built after it.  Pure.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from typing import Callable, Iterable


def _encode(rec: dict) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()


class CheckTable:
    def __init__(self, records: Iterable[dict] = ()) -> None:
        recs = sorted(records, key=lambda r: (r["Node"], r["CheckID"]))
        self._keys = [(r["Node"], r["CheckID"]) for r in recs]
        self._recs = recs
        self._blobs: list[bytes | None] = [None] * len(recs)  # encoded at the first read
        self._encoded = not recs  # every blob is there
        self._gen = 0  # changes so far
        self._body: tuple[int, bytes] = (-1, b"")  # the whole array, and after how many changes

    def __len__(self) -> int:
        return len(self._recs)

    def put(self, rec: dict) -> None:
        """Insert or replace the record of (rec["Node"], rec["CheckID"])."""
        key = (rec["Node"], rec["CheckID"])
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            self._recs[i] = rec
            self._blobs[i] = _encode(rec)
        else:
            self._keys.insert(i, key)
            self._recs.insert(i, rec)
            self._blobs.insert(i, _encode(rec))
        self._gen += 1

    def delete(self, node: str, check_id: str) -> None:
        key = (node, check_id)
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i], self._recs[i], self._blobs[i]
            self._gen += 1

    def records(self) -> list[dict]:
        return list(self._recs)

    def select(self, keep: Callable[[dict], bool] | None = None) -> bytes:
        """The JSON array of the records *keep* accepts (all of them without *keep*)."""
        if keep is None:
            return self.select_later()()
        return self._join([i for i, r in enumerate(self._recs) if keep(r)])

    def select_later(self) -> Callable[[], bytes]:
        """``select()`` of every record in two steps: this one takes the encoded records
        (references; each encoded once), the function it returns joins them, and may be
        called without the store's lock: the 15 MB join at 10,000 services then holds up
        no other answer.  The body is kept for the next reads until a record changes."""
        gen, body = self._body
        if gen == self._gen:
            return lambda: body
        parts = list(self._blobs) if self._encoded else self._parts(range(len(self._recs)))
        self._encoded, gen = True, self._gen

        def join() -> bytes:
            joined = bracketed(parts)
            self._body = (gen, joined)  # one assignment: a reader compares its count with the table's
            return joined
        return join

    def _join(self, positions: Iterable[int]) -> bytes:
        return bracketed(self._parts(positions))

    def _parts(self, positions: Iterable[int]) -> list[bytes]:
        """The encoded records at *positions*, each encoded once."""
        blobs, recs = self._blobs, self._recs
        parts = []
        for i in positions:
            blob = blobs[i]
            if blob is None:
                blob = blobs[i] = _encode(recs[i])
            parts.append(blob)
        return parts


def bracketed(parts: list) -> bytes:
    """``[`` + the parts joined by commas + ``]``, in one ``bytes.join``: CPython copies a
    join of a megabyte or more without holding the GIL, where ``b"[" + body + b"]"``
    copies 15 MB twice holding it, stalling the emulator's other threads (which a Go
    agent, answering on every core at once, would not be)."""
    if not parts:
        return b"[]"
    first, last = parts[0], parts[-1]
    try:
        parts[0] = b"[" + first
        parts[-1] = parts[-1] + b"]"
        return b",".join(parts)
    finally:
        parts[-1], parts[0] = last, first
