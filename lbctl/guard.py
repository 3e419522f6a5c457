"""The removal guard: refuse a change that would take a site down by accident.

One guard for every path that changes a load balancer (``apply``, ``rollback``,
``watch``, the Ansible module): ``deploy`` asks it about every change.  A change
is refused when it would

- leave nothing at all (no listeners and no pools: an empty or truncated
  inventory) — only ``--force`` lets that through;
- remove a listener;
- empty a pool that serves (its last serving member stops serving, or the pool goes);
- stop more than ``max_removal`` of a pool's serving members at once, or leave
  it with fewer than ``min_members`` when it had more.

``--allow-removal NAME`` lets removals in the named pools and listeners through;
``--force`` lets everything through.  What a configuration serves (``Served``)
is read from the text each target renders (``Target.served``), so a rollback to
a backup is guarded like an apply.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from lbctl import model
from lbctl.errors import LbctlError

SERVING = ("enabled", "backup")
SHOWN = 5  # names listed in a refusal before "and N more"


class Refused(LbctlError):
    """The guard refused the change; nothing was touched."""


@dataclass(frozen=True)
class Served:
    """What one configuration serves: its listeners, and each pool's serving members."""

    listeners: frozenset[str] = frozenset()
    pools: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.listeners and not self.pools


@dataclass(frozen=True)
class Policy:
    """How much a change may remove (lbctl.yml ``guard:``, and the command's flags)."""

    max_removal: float = 0.5  # the share of a pool's serving members that may stop at once
    min_members: int = 0  # a pool may not drop below this many serving members
    force: bool = False  # let everything through, an empty model included
    allow: frozenset[str] = frozenset()  # pools and listeners whose removals are let through


def served(desired: model.Desired) -> Served:
    """What a model serves (the same summary targets read back from their rendered text)."""
    return Served(frozenset(l.name for l in desired.listeners),
                  {p.name: frozenset(m.name for m in p.members if m.state in SERVING) for p in desired.pools})


def refusals(before: Served, after: Served, policy: Policy) -> list[str]:
    """Why ``after`` must not replace ``before``, one phrase each; empty if it may."""
    if policy.force:
        return []
    if after.empty:
        return ["it would leave nothing to serve (no listeners, no pools: an empty or truncated source?)"]
    problems = []
    gone = sorted(before.listeners - after.listeners - policy.allow)
    if gone:
        problems.append(f"it would remove listener{'s' * (len(gone) > 1)} {names(gone)}")
    for pool in sorted(set(before.pools) - policy.allow):
        old, now = before.pools[pool], after.pools.get(pool)
        if now is old:  # the very same set (a change read from the changed stretch keeps the others)
            continue
        problem = pool_problem(pool, old, now, policy)
        if problem:
            problems.append(problem)
    return problems


def pool_problem(pool: str, old: frozenset[str], now: frozenset[str] | None, policy: Policy) -> str | None:
    if not old:
        return None
    if now is None:
        return f"it would remove pool {pool} and its {len(old)} serving members ({names(sorted(old))})"
    stopped = sorted(old - now)
    if not now:
        return f"it would empty pool {pool} (stopping {names(stopped)})"
    if len(stopped) / len(old) > policy.max_removal:
        return (f"pool {pool}: {len(stopped)} of {len(old)} serving members would stop serving ({names(stopped)}), "
                f"more than max_removal {policy.max_removal:.0%}")
    if len(now) < policy.min_members and len(now) < len(old):
        return f"pool {pool}: {len(now)} serving members would be fewer than min_members {policy.min_members} (now {len(old)})"
    return None


def check(target: str, before: Served, after: Served, policy: Policy) -> None:
    """:raises Refused: one line naming what would go and how to let it through."""
    problems = refusals(before, after, policy)
    if problems:
        how = "--force" if after.empty else "--force, --allow-removal NAME or lbctl approve"
        raise Refused(f"{target}: refusing the change: {'; '.join(problems)} (pass {how} to let it through)")


def member_changes(before: model.Desired | None, after: model.Desired) -> list[str]:
    """Per pool, the members added, removed, drained and put in maintenance (for log lines)."""
    old = {p.name: p for p in (before.pools if before else ())}
    out = []
    for pool in after.pools:
        previous = old.pop(pool.name, None)
        if previous is pool:  # the very same pool (a watch keeps unchanged pools): nothing to compare
            continue
        was = {m.name: m.state for m in previous.members} if previous is not None else {}
        now = {m.name: m.state for m in pool.members}
        parts = [f"+{n}" for n in sorted(set(now) - set(was))] + [f"-{n}" for n in sorted(set(was) - set(now))]
        parts += [f"{now[n]} {n}" for n in sorted(set(now) & set(was)) if now[n] != was[n]]
        if parts:
            out.append(f"{pool.name}: {', '.join(parts)}")
    out += [f"{name}: pool removed" for name in sorted(old)]
    return out


def names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
