"""The mass-removal guard of ``lbctl watch``: refuse a change that would leave a
discovered pool with too few serving members, or stop serving more than a
share of them at once.  A flapping registry or a half-answered catalog should
not empty a load balancer; an operator who means it passes ``--force``.  Pure."""

from __future__ import annotations

from lbctl import model

SERVING = ("enabled", "backup")


def serving(pool: model.Pool) -> set[str]:
    return {m.name for m in pool.members if m.state in SERVING}


def refusals(previous: model.Desired | None, new: model.Desired, watched: set[str],
             min_members: int, max_removal: float) -> list[str]:
    """Why ``new`` must not replace ``previous``; empty if it may."""
    if previous is None:
        return []
    before = {p.name: p for p in previous.pools if p.name in watched}
    problems = []
    for pool in new.pools:
        if before.get(pool.name, pool) is pool:
            continue  # new, or the very same pool: nothing removed
        old, now = serving(before[pool.name]), serving(pool)
        if len(now) < min_members and len(now) < len(old):
            problems.append(f"pool {pool.name}: {len(now)} serving members would be fewer than "
                            f"min_members {min_members} (now {len(old)})")
        gone = old - now
        if old and len(gone) / len(old) > max_removal:
            problems.append(f"pool {pool.name}: {len(gone)} of {len(old)} serving members would stop serving, "
                            f"more than max_removal {max_removal:.0%}")
    for name in sorted(set(before) - {p.name for p in new.pools}):
        if serving(before[name]):
            problems.append(f"pool {name}: would disappear with {len(serving(before[name]))} serving members")
    return problems
