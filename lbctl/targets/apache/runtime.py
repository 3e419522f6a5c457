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
  is gone.
- A new member (one whose URL the balancer does not have) is added, within
  ``ProxySet growth`` spare slots, then set: each VirtualHost holds its own copy of
  the balancers it routes to, so ``planned`` is asked once per VirtualHost (``held``:
  its balancers) and lbctl adds it to every copy.  With no spare slots (``growth``
  0), or when Apache refuses the add (its slots used up: the read-back tells), a
  graceful renders fresh slots.  A member that comes back on the URL of one removed
  at runtime is that worker enabled again.
- What runs must agree with ``before``: every member of a changed pool runs under
  its URL, or a graceful puts the file back in force.
"""

from __future__ import annotations

from typing import Collection, Mapping

from lbctl import model
from lbctl.targets.apache import view
from lbctl.targets.apache.balancers import Balancer, Op

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


def why_not(before: model.Desired, after: model.Desired, running: Mapping[str, Balancer],
            adds: bool = True) -> str | None:
    """Why ``plan`` gives None, or None when it gives operations."""
    return planned(before, after, running, adds=adds)[1]


def beyond_members(before: model.Desired, after: model.Desired) -> str | None:
    """What differs between the models besides pools' members, or None."""
    if before.listeners != after.listeners:
        return "a listener changed"
    if [p.name for p in before.pools] != [p.name for p in after.pools]:
        return "a pool was added or removed"
    for old, new in zip(before.pools, after.pools):
        if old is not new and model.replace(old, members=()) != model.replace(new, members=()):
            return f"pool {new.name}'s settings changed"
    return None


def planned(before: model.Desired, after: model.Desired, running: Mapping[str, Balancer],
            held: Collection[str] | None = None, adds: bool = True) -> tuple[list[Op] | None, str | None]:
    """``plan`` and why not; ``held``: the balancers of the VirtualHost ``running`` is
    (None: all); ``adds``: whether new members may be added (spare slots rendered)."""
    why = beyond_members(before, after)
    if why:
        return None, why
    ops: list[Op] = []
    for old, new in zip(before.pools, after.pools):
        name = view.balancer_name(new.name)
        if old is new or old == new or (held is not None and name not in held):
            continue
        balancer = running.get(name)
        if balancer is None:
            return None, f"balancer://{name} does not run"
        found = pool_ops(old, new, balancer, adds)
        if isinstance(found, str):
            return None, f"balancer://{name}: {found}"
        ops += found
    # Routes are freed before they are given again: removed members first.
    return sorted(ops, key=lambda op: op.route != "" or op.flags != REMOVED), None


def pool_ops(old: model.Pool, new: model.Pool, balancer: Balancer, adds: bool = True) -> list[Op] | str:
    """The operations for one pool's members, or why a graceful is needed."""
    olds = {m.name: m for m in old.members}
    news = {m.name: m for m in new.members}
    if len({(m.address.lower(), m.port) for m in new.members}) < len(new.members):
        return "two members share an address and port"
    for m in old.members:
        if balancer.worker(m.address, m.port) is None:
            return f"member {m.name} ({url(m)}) does not run (a graceful puts the file back)"
    ops = []
    kept = {(m.address.lower(), m.port) for m in new.members}
    for m in old.members:
        if m.name not in news and (m.address.lower(), m.port) not in kept:  # else: renamed, set below
            worker = balancer.worker(m.address, m.port)
            ops.append(Op(balancer.name, url(m), "", round(worker.loadfactor) or 1, REMOVED))
    for m in new.members:
        was = olds.get(m.name)
        if was is not None and (was.address, was.port) != (m.address, m.port):
            return f"member {m.name} moved to {url(m)} (a worker's URL cannot change)"
        if was is None and balancer.worker(m.address, m.port) is None and not adds:
            return f"member {m.name} ({url(m)}) is new and the balancers have no spare slots (growth 0)"
        if not 1 <= m.weight <= view.LOADFACTOR_MAX:
            return f"member {m.name}'s weight {m.weight} is beyond Apache's load factors 1-{view.LOADFACTOR_MAX}"
        if was != m:
            ops.append(Op(balancer.name, url(m), view.route(m.name), m.weight, STATE_FLAGS[m.state], add=True))
    return ops
