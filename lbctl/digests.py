"""sha256 of configuration texts, kept for the last few text objects.  Pure.

A watch round asks for the digest of its candidate (megabytes at 10,000 services)
for the record, then of the live text, which is the previous round's candidate,
and the file write that follows backs that text up under its digest: each text is
hashed once.  Safe to call from several threads (the watch writes its file on a
thread of its own while its rounds go on): the cache is changed under a lock, the
hashing is done outside it.
"""

from __future__ import annotations

import hashlib
import threading

_digests: dict[int, tuple[str, str]] = {}
_lock = threading.Lock()
DIGESTS_KEPT = 4
CHUNK = 1 << 16


def digest(text: str | None) -> str | None:
    """sha256 of ``text``, kept for the last few text objects: a watch round's
    candidate is the next round's live text (megabytes at 10,000 services)."""
    if text is None:
        return None
    with _lock:
        hit = _digests.pop(id(text), None)
    if hit is None or hit[0] is not text:
        hit = (text, sha256_text(text))
    with _lock:
        while len(_digests) >= DIGESTS_KEPT:  # the oldest goes: the live text is the last but one
            del _digests[next(iter(_digests))]
        _digests[id(text)] = hit  # the last one last
    return hit[1]


def sha256_text(text: str) -> str:
    """sha256 of ``text`` in UTF-8, encoded a chunk at a time: one copy of megabytes
    costs a fresh allocation (and its page faults) every round; chunks reuse memory."""
    h = hashlib.sha256()
    for start in range(0, len(text), CHUNK):
        h.update(text[start:start + CHUNK].encode())
    return h.hexdigest()
