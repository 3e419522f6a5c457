"""What of the running servers' states carries over a reload: the rows of
``show servers state`` that lbctl writes to HAProxy's server-state file before
each reload (docs/runtime-api.md, "Server states across reloads").  Pure text
work on the dump and the two configs, no I/O."""

from __future__ import annotations

from lbctl.targets.base import Change
from lbctl.targets.haproxy import cfg as haproxy_cfg

SEARCH_MAX = 64  # servers beyond which one pass over every row of the dump is as cheap as searching


def carried(text: str, change: Change, excluded: set) -> str:
    """The dump ``text`` as the state file of a reload from ``change.live`` to
    ``change.candidate``: without the rows of the servers whose line changes, came
    or went (for those the new config must win), and those of ``excluded``
    ((backend, server) pairs)."""
    stale = changed_servers(change.live, change.candidate)
    if stale is not None and len(stale | excluded) <= SEARCH_MAX:
        return without_rows(text, stale | excluded)
    # more than server lines changed: compare every server
    before, after = haproxy_cfg.servers(change.live or ""), haproxy_cfg.servers(change.candidate)
    rows = text.split("\n")
    return "\n".join(rows[:2] + [row for row in rows[2:] if row and unchanged(row, before, after)
                                 and key(row) not in excluded]) + "\n"


def changed_servers(live: str | None, candidate: str) -> set | None:
    """The servers whose line changed, came or went from ``live`` to ``candidate``,
    from the changed stretch only (no whole-file parse); None when more than server
    lines changed (then ``unchanged`` decides row by row)."""
    found = haproxy_cfg.server_delta(live, candidate, dynamic=True)
    if found is None:
        return None
    return {(s.backend, s.name) for pair in found[0] for s in pair if s is not None}


def without_rows(text: str, servers: set) -> str:
    """A ``show servers state`` dump without the rows of ``servers`` ((backend,
    server) pairs), found by searching for their backend's name: a few servers
    cost a few searches, not a split of 50,000 rows."""
    spans, body = [], text.find("\n", text.find("\n") + 1) + 1  # after the version and the header line
    for backend, server in servers:
        pos = text.find(f" {backend} ", body)
        while pos >= 0:
            start, end = text.rfind("\n", 0, pos) + 1, text.find("\n", pos) + 1 or len(text)
            if key(text[start:end]) == (backend, server):
                spans.append((start, end))
            pos = text.find(f" {backend} ", end)
    pieces, pos = [], 0
    for start, end in sorted(spans):
        pieces.append(text[pos:start])
        pos = end
    return "".join(pieces + [text[pos:]])


def key(row: str) -> tuple[str, ...]:
    """A ``show servers state`` row's (backend name, server name)."""
    return tuple(row.split(" ", 4)[1:4:2])


def unchanged(row: str, before: dict, after: dict) -> bool:
    """Keep a ``show servers state`` row only if its server's line is the same in both configs."""
    fields = row.split()
    if len(fields) < 4:
        return False
    key = (fields[1], fields[3])
    return key in after and before.get(key) == after[key]
