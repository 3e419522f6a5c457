"""The removal guard: refuse a change that would take a site down by accident.

One guard for every path that changes a load balancer (``apply``, ``rollback``,
``watch``, the Ansible module): ``deploy`` asks it about every change.  A change
is refused when it would

- leave nothing at all (no listeners and no pools: an empty or truncated
  inventory) — only ``--force`` lets that through;
- remove a listener;
- empty a pool that serves (its last serving member stops serving, or the pool goes);
- stop more than ``max_removal`` of a pool's serving members at once, or leave
  it with fewer than ``min_members`` when it had more;
- stop more than one and more than ``max_removal`` of the pools that serve routes
  services declare (docs/consul.md#routes-declared-by-services).  Such a pool comes
  and goes with its service, so one that empties or goes alone is no refusal.

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
    routed: frozenset[str] = frozenset()  # pools only routes services declare send to (model.service_pools)

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
                  {p.name: frozenset(m.name for m in p.members if m.state in SERVING) for p in desired.pools},
                  frozenset(model.service_pools(desired.listeners)))


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
    # A pool whose members are the very same set in both has nothing to refuse: only
    # the changed ones are looked into (a watch round changes a few of 10,000).
    changed = [pool for pool, old in before.pools.items() if after.pools.get(pool) is not old]
    for pool in sorted(set(changed) - policy.allow - before.routed):
        old, now = before.pools[pool], after.pools.get(pool)
        problem = pool_problem(pool, old, now, policy)
        if problem:
            problems.append(problem)
    problem = routed_problem(before, after, changed, policy)
    return problems + ([problem] if problem else [])


def routed_problem(before: Served, after: Served, changed: list[str], policy: Policy) -> str | None:
    """The pools of services' routes, as if each were a member of one pool: more than one
    and more than ``max_removal`` of those serving may not stop at once."""
    if not before.routed:
        return None
    stopped = sorted(p for p in set(changed) & before.routed - policy.allow if before.pools[p] and not after.pools.get(p))
    serving = sum(1 for p in before.routed if before.pools.get(p))
    if len(stopped) > 1 and len(stopped) / serving > policy.max_removal:
        return (f"{len(stopped)} of {serving} services with routes of their own would stop serving "
                f"({names(stopped)}), more than max_removal {policy.max_removal:.0%}")
    return None


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
    """Per pool, the members added, removed, drained and put in maintenance (for log lines).
    A pool that is the very same object in both is not looked into (a watch round
    rebuilds only the pools that changed, in place)."""
    olds = before.pools if before else ()
    if len(olds) == len(after.pools):  # the same pools in the same places, most likely
        pairs = [(old, new) for old, new in zip(olds, after.pools) if old is not new]
        if all(old.name == new.name for old, new in pairs):
            return [line for old, new in pairs if (line := pool_changes(old, new))]
    old = {p.name: p for p in olds}
    out = [line for pool in after.pools if old.get(pool.name) is not pool
           and (line := pool_changes(old.get(pool.name), pool))]
    return out + [f"{name}: pool removed" for name in sorted(old.keys() - {p.name for p in after.pools})]


def pool_changes(prior: model.Pool | None, pool: model.Pool) -> str:
    """One pool's line for ``member_changes``; "" if its members did not change."""
    was = {m.name: m.state for m in prior.members} if prior is not None else {}
    now = {m.name: m.state for m in pool.members}
    parts = [f"+{n}" for n in sorted(set(now) - set(was))] + [f"-{n}" for n in sorted(set(was) - set(now))]
    parts += [f"{now[n]} {n}" for n in sorted(set(now) & set(was)) if now[n] != was[n]]
    return f"{pool.name}: {', '.join(parts)}" if parts else ""


def names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
