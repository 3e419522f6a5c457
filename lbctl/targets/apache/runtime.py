"""Which changes Apache can take through balancer-manager without a graceful.  Pure.

``plan(before, after, running)`` compares two models (what the file in place was
rendered from, and the candidate's) with what runs (``balancers.Balancer``, read
from balancer-manager) and gives the member operations that make the running
balancers serve ``after``, or None when only a graceful can (``why_not`` says why).

Decisions (docs/apache.md#runtime-changes):

- Only members change at runtime.  A change to a listener (VirtualHosts, routes,
  certificates), to the pool list, or to a pool's own settings (balance method,
  health check, timeouts, sticky cookie, maxconn) needs a graceful, even where
  balancer-manager has a field for it (``b_lbm``, ``b_ss``): the file renders
  those in ways the manager does not mirror one to one.
- A member is a worker, known by its URL (``http://address:port``) and named by its
  route.  A member whose address or port changes needs a graceful: a worker's URL
  cannot change.
- Weight and state are set in place: weight is the load factor (Apache takes 1 to
  100 only: beyond that, the graceful path's check says why); ``drain`` is the
  ``N`` flag (only sticky sessions reach it), ``maint`` is ``D`` (disabled),
  ``backup`` is ``H`` (hot standby), ``enabled`` none of them.
- A removed member cannot be deleted: it is disabled (``D``) and its route
  cleared, so it takes no request and no sticky session; it keeps its slot until
  the next graceful, which starts from the file (``BalancerPersist Off``), where it
  is gone.  A member that comes back on the same URL is that worker enabled again.
- A new member is added only while the balancer has room (``MaxMembers`` minus its
  workers: the configured members plus ``growth``; ``growth: 0`` makes every new
  member a graceful).  Its route, load factor and status are set, and its health
  check is copied from a running member the file has in the same pool (balancer-manager sets
  method, interval, passes, fails, URI and expression).  Its ``timeout``,
  ``connectiontimeout`` and ``retry`` cannot be set through balancer-manager: it
  runs with Apache's defaults for them (the listener's ``Timeout``; a 60 s retry)
  until the next graceful (``balancers.ADDED_DEFAULTS``).  A pool with ``maxconn``
  (``max=``), or whose members have any other setting a new member would lack,
  takes new members through a graceful.
- What runs must agree with ``before``: every member of a changed pool runs under
  its URL, or a graceful puts the file back in force.
"""

from __future__ import annotations

from typing import Mapping

from lbctl import model
from lbctl.targets.apache import view
from lbctl.targets.apache.balancers import ADDED_DEFAULTS, OPTIONAL_FIELDS, Balancer, Op, Worker

STATE_FLAGS = {state: frozenset(flags.lstrip("+")) for state, flags in view.STATUS.items()}  # the file's status=
REMOVED = frozenset("D")


def url(member: model.Member) -> str:
    """A member's worker URL, as the template writes its ``BalancerMember``."""
    host = f"[{member.address}]" if ":" in member.address else member.address
    return f"http://{host}:{member.port}"


def plan(before: model.Desired, after: model.Desired, running: Mapping[str, Balancer]) -> list[Op] | None:
    """The operations that make ``running`` serve ``after``, or None (a graceful)."""
    ops, _ = planned(before, after, running)
    return ops


def why_not(before: model.Desired, after: model.Desired, running: Mapping[str, Balancer]) -> str | None:
    """Why ``plan`` gives None, or None when it gives operations."""
    return planned(before, after, running)[1]


def planned(before: model.Desired, after: model.Desired,
            running: Mapping[str, Balancer]) -> tuple[list[Op] | None, str | None]:
    if before.listeners != after.listeners:
        return None, "a listener changed"
    if [p.name for p in before.pools] != [p.name for p in after.pools]:
        return None, "a pool was added or removed"
    ops: list[Op] = []
    for old, new in zip(before.pools, after.pools):
        if old is new or old == new:
            continue
        if model.replace(old, members=()) != model.replace(new, members=()):
            return None, f"pool {new.name}'s settings changed"
        name = view.balancer_name(new.name)
        balancer = running.get(name)
        if balancer is None:
            return None, f"balancer://{name} does not run"
        found = pool_ops(old, new, balancer)
        if isinstance(found, str):
            return None, f"balancer://{name}: {found}"
        ops += found
    # Routes are freed before they are given again; adds come last (deploy order).
    return sorted(ops, key=lambda op: (op.add, op.flags != REMOVED)), None


def pool_ops(old: model.Pool, new: model.Pool, balancer: Balancer) -> list[Op] | str:
    """The operations for one pool's members, or why a graceful is needed."""
    olds = {m.name: m for m in old.members}
    news = {m.name: m for m in new.members}
    if len({(m.address.lower(), m.port) for m in new.members}) < len(new.members):
        return "two members share an address and port"
    for m in old.members:
        if balancer.worker(m.address, m.port) is None:
            return f"member {m.name} ({url(m)}) does not run (a graceful puts the file back)"
    ops, adds = [], []
    for m in old.members:
        if m.name not in news:
            worker = balancer.worker(m.address, m.port)
            ops.append(Op(balancer.name, url(m), "", round(worker.loadfactor) or 1, REMOVED))
    for m in new.members:
        was = olds.get(m.name)
        if was is not None and (was.address, was.port) != (m.address, m.port):
            return f"member {m.name} moved to {url(m)} (a worker's URL cannot change)"
        if not 1 <= m.weight <= view.LOADFACTOR_MAX:
            return f"member {m.name}'s weight {m.weight} is beyond Apache's load factors 1-{view.LOADFACTOR_MAX}"
        op = Op(balancer.name, url(m), view.route(m.name), m.weight, STATE_FLAGS[m.state])
        if was is None and balancer.worker(m.address, m.port) is None:
            adds.append(op)
        elif was != m:
            ops.append(op)
    if adds:
        why = addable(old, new, balancer, len(adds))
        if why:
            return why
        health = template(balancer, old).health
        ops += [Op(op.balancer, op.url, op.route, op.loadfactor, op.flags, add=True, health=health) for op in adds]
    return ops


def addable(old: model.Pool, pool: model.Pool, balancer: Balancer, count: int) -> str | None:
    """Why ``count`` new members cannot be added to ``balancer`` at runtime, or None."""
    if balancer.max_members is None:
        return "its room for new members is not known"
    if count > balancer.free:
        return (f"{count} new member{'s' if count > 1 else ''} but room for {balancer.free} "
                f"({balancer.max_members} slots, {len(balancer.workers)} used; raise growth)")
    if pool.maxconn is not None:
        return "a new member's maxconn cannot be set through balancer-manager"
    sibling = template(balancer, old)
    if sibling is None:
        return "no configured member to copy a new member's settings from"
    unsettable = [k for k, _ in sibling.fixed if k in OPTIONAL_FIELDS and k not in ADDED_DEFAULTS]
    if unsettable:
        return f"a new member's {', '.join(unsettable)} cannot be set through balancer-manager"
    return None


def template(balancer: Balancer, pool: model.Pool) -> Worker | None:
    """The running worker of one of ``pool``'s members (the file's: configured, or
    added like them), with a route: what a new member copies."""
    wanted = {(m.address.lower(), m.port) for m in pool.members}
    return next((w for w in balancer.workers if (w.host.lower(), w.port) in wanted and w.route), None)
