"""Every check record in Consul's order, with its JSON encoded once until it changes.

``/v1/health/state/any`` returns every check of the datacenter (50,000 at 10,000
services × 5 instances) and a watcher re-reads it after every change, so the
emulator keeps the records sorted by (node, check ID), the order of Consul's
``checks`` table, next to their encoded JSON: a read is a join of cached bytes (in
C once every record has been encoded), a status change re-encodes one record, a
registration is one sorted insert.  Pure.
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
        self._body: bytes | None = None  # the whole array, until the next change

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
        self._body = None

    def delete(self, node: str, check_id: str) -> None:
        key = (node, check_id)
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i], self._recs[i], self._blobs[i]
            self._body = None

    def records(self) -> list[dict]:
        return list(self._recs)

    def select(self, keep: Callable[[dict], bool] | None = None) -> bytes:
        """The JSON array of the records *keep* accepts (all of them without *keep*)."""
        if keep is None:
            if self._body is None:
                self._body = bracketed(self._blobs) if self._encoded else self._join(range(len(self._recs)))
                self._encoded = True
            return self._body
        return self._join([i for i, r in enumerate(self._recs) if keep(r)])

    def _join(self, positions: Iterable[int]) -> bytes:
        blobs, recs = self._blobs, self._recs
        parts = []
        for i in positions:
            blob = blobs[i]
            if blob is None:
                blob = blobs[i] = _encode(recs[i])
            parts.append(blob)
        return bracketed(parts)


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
