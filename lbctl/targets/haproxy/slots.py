"""Spare server slots for HAProxy backends, so members can come and go through
the Runtime API without a reload (the Data Plane API pattern).  Pure.

Each pool is rendered as ``slot1 … slotN`` servers: members keep the slot they
have in the live config (matched by address and port), new members take free
slots, and removed members free theirs.  A free slot points at 127.0.0.1:9 and
is ``disabled``.  When the slots run out, the pool grows to its members plus
``headroom`` — a structural change, so that apply reloads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from lbctl import model
from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.model import replace

PREFIX = "slot"
SECTION_END = re.compile(r"\n(?=\S)")  # a line that starts a new section (not indented)


def assign(desired: model.Desired, live: str | None, headroom: int,
           previous: dict[str, tuple[model.Pool, model.Pool]] | None = None
           ) -> tuple[model.Desired, dict[str, tuple[model.Pool, model.Pool]]]:
    """``desired`` with every pool's members laid out in slots, and the layout to pass
    back as ``previous`` next time.

    ``previous`` must come from the call whose render is ``live``: a pool that is
    the very same object as then keeps its layout without being laid out again,
    so a change costs work for the pools that changed, not for all of them.
    """
    pools, layout = [], {}
    for pool in desired.pools:
        hit = (previous or {}).get(pool.name)
        if hit is not None and hit[0] is pool:
            slotted = hit[1]
        elif previous is not None:  # the live slots are those of the previous layout: no parse
            slotted = pool_slots(pool, servers(hit[1]) if hit is not None else [], headroom)
        else:
            slotted = pool_slots(pool, by_backend(live or "").get(pool.name, []), headroom)
        pools.append(slotted)
        layout[pool.name] = (pool, slotted)
    return replace(desired, pools=tuple(pools)), layout


def servers(slotted: model.Pool) -> list[haproxy_cfg.Server]:
    """A slotted pool as the server lines it renders to."""
    return [haproxy_cfg.Server(slotted.name, m.name, m.address, m.port, m.weight, m.state == "maint", ())
            for m in slotted.members]


@lru_cache(maxsize=4)
def by_backend(text: str) -> dict[str, list[haproxy_cfg.Server]]:
    grouped: dict[str, list[haproxy_cfg.Server]] = {}
    for server in haproxy_cfg.parse(text)[1]:
        grouped.setdefault(server.backend, []).append(server)
    return grouped


def pool_slots(pool: model.Pool, live: list[haproxy_cfg.Server], headroom: int) -> model.Pool:
    slots = [s for s in live if s.name.startswith(PREFIX) and s.name[len(PREFIX):].isdigit()]
    count = len(slots) if len(slots) >= len(pool.members) and slots else len(pool.members) + headroom
    names = [f"{PREFIX}{i}" for i in range(1, count + 1)]
    placed: dict[str, model.Member] = {}
    waiting = {(m.address, m.port): m for m in pool.members}
    for s in slots:
        member = waiting.pop((s.address, s.port), None)
        if member is not None and not s.free and s.name in names:
            placed[s.name] = member
        elif member is not None:
            waiting[(member.address, member.port)] = member
    # Fill slots that were already free first: one vacated in this same change may
    # still carry connections, and re-addressing it would need a reload.
    vacated = {s.name for s in slots if not s.free}
    free = sorted((n for n in names if n not in placed), key=lambda n: (n in vacated, names.index(n)))
    for name, member in zip(free, sorted(waiting.values(), key=lambda m: m.name)):
        placed[name] = member
    return replace(pool, members=tuple(
        replace(placed[n], name=n) if n in placed else
        model.Member(n, haproxy_cfg.PLACEHOLDER[0], haproxy_cfg.PLACEHOLDER[1], state="maint")
        for n in names))


def in_use(text: str, backends: Iterable[str] | None = None) -> dict[str, dict]:
    """Per backend (of ``backends`` only, if given: their sections alone are parsed): slots in
    use (slot → address:port) and free slots, from a rendered config."""
    if backends is not None:
        text = "".join(section(text, name) for name in backends)
    out: dict[str, dict] = {}
    for s in haproxy_cfg.parse(text)[1]:
        entry = out.setdefault(s.backend, {"used": {}, "free": []})
        if s.free:
            entry["free"].append(s.name)
        else:
            entry["used"][s.name] = f"{s.address}:{s.port}"
    return out


def section(text: str, backend: str) -> str:
    """The ``backend`` section of a rendered config (from its line to the next section), "" if none."""
    start = text.find(f"\nbackend {backend}\n")
    if start < 0:
        return ""
    end = SECTION_END.search(text, start + 1)
    return text[start:end.start() + 1 if end else len(text)]
