"""The pure diff for BIG-IP: (what the device has, what lbctl wants) -> the
operations of one sync, in the order one transaction runs them.  No I/O.

Rules (docs/bigip.md):
- lbctl touches only pools and monitors whose description carries
  ``lbctl:owner=<owner>``, and every member of such a pool.  A pool or monitor
  lbctl wants that exists without the mark is an error, never a takeover.
- Add before remove: monitors and pools are created and updated first; members,
  pools, monitors and nodes are deleted last.
- A member lbctl no longer wants drains: this sync disables it (no new sessions)
  and marks it ``lbctl:drain-since=<now>``; a later sync deletes it once the
  drain time has passed or its current connections are zero.  A pool lbctl no
  longer wants drains all its members, then goes.  ``drain_time`` 0 deletes at once.
- A node (in the partition, without a description) goes when a deleted member
  referenced it and no member of any pool still does.

Information read only when needed (nodes, virtual servers, member connections)
is asked for through ``Plan.missing``: read it and plan again.  ``rest_call``
turns an operation into its iControl REST request (sent by ``icontrol``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from lbctl.errors import ConfigError
from lbctl.targets.bigip import model as bm
from lbctl.targets.bigip.model import (DRAIN, DeviceState, MemberSpec, MonitorSpec, PoolSpec, Wanted,
                                       full_path, member_text, monitor_refs, owned)

ORDER = ("create monitor", "update monitor", "create pool", "update pool", "create member",
         "update member", "drain member", "delete member", "delete pool", "delete monitor", "delete node")


@dataclass(frozen=True)
class Policy:
    owner: str
    now: float
    drain_time: float  # seconds; 0 deletes unwanted members at once


@dataclass(frozen=True)
class Op:
    """One write.  ``step`` orders it (see ORDER); ``pool`` is set for members."""

    step: str
    name: str
    pool: str | None = None
    spec: PoolSpec | MemberSpec | MonitorSpec | None = None

    @property
    def verb(self) -> str:
        return "update" if self.step == "drain member" else self.step.split()[0]

    @property
    def kind(self) -> str:
        return self.step.split()[1]

    @property
    def label(self) -> str:
        return f"member {self.pool}/{self.name}" if self.pool else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Plan:
    """``before``/``after``: lbctl's pools and monitors before and after this sync."""

    ops: tuple[Op, ...]
    summary: tuple[str, ...]
    waiting: tuple[str, ...]
    before: tuple[Mapping[str, PoolSpec], Mapping[str, MonitorSpec]]
    after: tuple[Mapping[str, PoolSpec], Mapping[str, MonitorSpec]]
    missing: frozenset = frozenset()  # "nodes", "virtuals", ("connections", pool)


@dataclass
class _Work:
    ops: list[Op] = field(default_factory=list)
    lines: list[list[str]] = field(default_factory=list)  # the summary lines of each op
    waiting: list[str] = field(default_factory=list)
    missing: set = field(default_factory=set)
    gone_nodes: set[str] = field(default_factory=set)

    def add(self, step: str, name: str, line: str, pool: str | None = None, spec=None) -> None:
        self.ops.append(Op(step, name, pool, spec))
        self.lines.append([line])


def owned_part(current: DeviceState, owner: str) -> tuple[dict[str, PoolSpec], dict[str, MonitorSpec]]:
    return ({n: p for n, p in current.pools.items() if owned(p.description, owner)},
            {n: m for n, m in current.monitors.items() if owned(m.description, owner)})


def plan(current: DeviceState, wanted: Wanted, policy: Policy) -> Plan:
    """The operations that move ``current`` toward ``wanted``.

    :raises ConfigError: lbctl wants a pool or monitor that exists but is not its own.
    """
    pools, monitors = owned_part(current, policy.owner)
    conflicts(current, wanted, policy.owner)
    work = _Work()
    after_pools: dict[str, PoolSpec] = {}
    for name in sorted(wanted.pools):
        after_pools[name] = sync_pool(pools.get(name), wanted.pools[name], current, policy, work)
    for name in sorted(set(pools) - set(wanted.pools)):
        kept = retire_pool(pools[name], current, policy, work)
        if kept is not None:
            after_pools[name] = kept
    after_monitors = sync_monitors(monitors, wanted.monitors, after_pools, current, policy, work)
    collect_nodes(current, after_pools, policy, work)
    order = {step: i for i, step in enumerate(ORDER)}
    indexed = sorted(range(len(work.ops)), key=lambda i: (order[work.ops[i].step], i))
    return Plan(ops=tuple(work.ops[i] for i in indexed), summary=tuple(x for i in indexed for x in work.lines[i]),
                waiting=tuple(work.waiting), before=(pools, monitors),
                after=(dict(sorted(after_pools.items())), dict(sorted(after_monitors.items()))),
                missing=frozenset(work.missing))


def conflicts(current: DeviceState, wanted: Wanted, owner: str) -> None:
    for kind, have, want in (("pool", current.pools, wanted.pools), ("monitor", current.monitors, wanted.monitors)):
        for name in sorted(want):
            if name in have and not owned(have[name].description, owner):
                raise ConfigError(
                    f"{kind} {full_path(current.partition, name)} exists on the device and is not lbctl's "
                    f"(its description lacks lbctl:owner={owner}); lbctl does not take it over: "
                    f"rename the pool in the inventory or remove the device's {kind}")


def sync_pool(have: PoolSpec | None, want: PoolSpec, current: DeviceState, policy: Policy, work: _Work) -> PoolSpec:
    """Create or update one wanted pool; returns the pool as it is after this sync."""
    if have is None:
        work.add("create pool", want.name, f"+ pool {want.name} ({want.lb_mode}, monitor "
                 f"{want.monitor or 'none'}, {len(want.members)} members)", spec=want)
        work.lines[-1] += [f"+ member {want.name}/{member_text(m)}" for m in want.members]
        return want
    if have.settings() != want.settings():
        work.add("update pool", want.name, f"~ pool {want.name}: {changes(have, want, POOL_FIELDS)}", spec=want)
    members = have.member_map()
    after = []
    for m in want.members:
        old = members.get(m.name)
        if old is None:
            work.add("create member", m.name, f"+ member {want.name}/{member_text(m)}", want.name, m)
        elif old != m:
            note = " (back in the inventory: draining stops)" if old.draining_since is not None else ""
            work.add("update member", m.name, f"~ member {want.name}/{m.name}: {changes(old, m, MEMBER_FIELDS)}{note}",
                     want.name, m)
        after.append(m)
    wanted_names = {m.name for m in want.members}
    after += [k for m in have.members if m.name not in wanted_names
              for k in [retire_member(have.name, m, current, policy, work)] if k is not None]
    return replace(want, description=have.description, members=tuple(sorted(after, key=lambda x: x.name)))


def retire_pool(have: PoolSpec, current: DeviceState, policy: Policy, work: _Work) -> PoolSpec | None:
    """An owned pool lbctl no longer wants: drain its members, then delete it."""
    mark = len(work.ops)
    kept = [k for m in have.members for k in [retire_member(have.name, m, current, policy, work)] if k is not None]
    if kept:
        return replace(have, members=tuple(kept))
    if current.virtual_pools is None:
        work.missing.add("virtuals")
        return have
    user = current.virtual_pools.get(have.name)
    if user is not None:
        work.waiting.append(f"pool {have.name} stays: virtual server {user} uses it")
        return replace(have, members=())
    # Every member can go: one pool delete removes them with it.
    gone = {m.address for m in have.members}
    del work.ops[mark:], work.lines[mark:]
    work.gone_nodes |= gone
    work.add("delete pool", have.name, f"- pool {have.name} ({len(have.members)} members)")
    return None


def retire_member(pool: str, m: MemberSpec, current: DeviceState, policy: Policy, work: _Work) -> MemberSpec | None:
    """A member lbctl no longer wants: start draining, keep waiting, or delete.  Returns it if it stays."""
    since = m.draining_since
    reason = None
    if policy.drain_time <= 0:
        reason = "no drain time"
    elif since is None:
        drained = replace(m, admin="offline" if m.admin == "offline" else "disabled",
                          description=f"{DRAIN}{int(policy.now)}")
        work.add("drain member", m.name, f"~ member {pool}/{m.name}: draining (disabled now; deleted after "
                 f"{policy.drain_time:g}s or at zero connections)", pool, drained)
        return drained
    elif policy.now - since >= policy.drain_time:
        reason = "drain time passed"
    elif pool not in current.connections:
        work.missing.add(("connections", pool))
        return m
    elif current.connections[pool].get(m.name, 0) == 0:
        reason = "no connections left"
    else:
        left = policy.drain_time - (policy.now - since)
        work.waiting.append(f"member {pool}/{m.name} draining: {current.connections[pool][m.name]} "
                            f"connections, {left:.0f}s of drain time left")
    if reason is None:
        if m.admin == "enabled":  # someone enabled it again by hand: keep it out of rotation
            m = replace(m, admin="disabled")
            work.add("drain member", m.name, f"~ member {pool}/{m.name}: disabled again (draining)", pool, m)
        return m
    work.add("delete member", m.name, f"- member {pool}/{m.name} ({reason})", pool)
    work.gone_nodes.add(m.address)
    return None


def sync_monitors(have: Mapping[str, MonitorSpec], want: Mapping[str, MonitorSpec], after_pools: Mapping[str, PoolSpec],
                  current: DeviceState, policy: Policy, work: _Work) -> dict[str, MonitorSpec]:
    after = {}
    for name, m in sorted(want.items()):
        old = have.get(name)
        if old is None:
            work.add("create monitor", name, f"+ monitor {name} ({m.type}, every {m.interval}s)", spec=m)
        elif old.settings() != m.settings():
            work.add("update monitor", name, f"~ monitor {name}: {changes(old, m, MONITOR_FIELDS)}", spec=m)
            m = replace(m, description=old.description)
        else:
            m = old
        after[name] = m
    used = set()
    for p in list(after_pools.values()) + [p for n, p in current.pools.items() if not owned(p.description, policy.owner)]:
        used |= monitor_refs(p.monitor)
    for name, m in sorted(have.items()):
        if name in want:
            continue
        if full_path(current.partition, name) in used:
            after[name] = m
        else:
            work.add("delete monitor", name, f"- monitor {name}", spec=m)
    return after


def collect_nodes(current: DeviceState, after_pools: Mapping[str, PoolSpec], policy: Policy, work: _Work) -> None:
    if not work.gone_nodes:
        return
    if current.nodes is None:
        work.missing.add("nodes")
        return
    others = [p for n, p in current.pools.items() if n not in after_pools and not owned(p.description, policy.owner)]
    used = {m.address for p in list(after_pools.values()) + others for m in p.members}
    for node in sorted(work.gone_nodes - used):
        description = current.nodes.get(node)
        if description == "" or (description is not None and owned(description, policy.owner)):
            work.add("delete node", node, f"- node {node} (no member uses it)")


POOL_FIELDS = (("lb_mode", "mode"), ("monitor", "monitor"), ("min_active", "min-active"))
MEMBER_FIELDS = (("ratio", "ratio"), ("priority_group", "priority"), ("connection_limit", "limit"),
                 ("admin", "state"), ("description", "description"))
MONITOR_FIELDS = (("send", "send"), ("recv", "recv"), ("interval", "interval"), ("timeout", "timeout"))


def changes(old, new, names) -> str:
    return ", ".join(f"{label} {getattr(old, f)!r} -> {getattr(new, f)!r}" if isinstance(getattr(new, f), str)
                     else f"{label} {getattr(old, f)} -> {getattr(new, f)}"
                     for f, label in names if getattr(old, f) != getattr(new, f))


# -- operations as iControl REST requests ---------------------------------------------

def segment(partition: str, name: str) -> str:
    """``~P~name``, or ``~T~A~name`` for a folder."""
    return "~" + "~".join(partition.split("/") + [name])


def rest_call(partition: str, op: Op) -> tuple[str, str, Any]:
    """The REST request of one operation."""
    spec = op.spec
    if op.kind == "monitor":
        mtype = spec.type
        base = f"/tm/ltm/monitor/{mtype}"
        if op.verb == "create":
            return "POST", base + "/", bm.monitor_body(spec, partition, True)
        path = f"{base}/{segment(partition, op.name)}"
        return ("PATCH", path, bm.monitor_body(spec, partition, False)) if op.verb == "update" else ("DELETE", path, None)
    if op.kind == "pool":
        if op.verb == "create":
            return "POST", "/tm/ltm/pool/", bm.pool_body(spec, partition, True)
        path = f"/tm/ltm/pool/{segment(partition, op.name)}"
        return ("PATCH", path, bm.pool_body(spec, partition, False)) if op.verb == "update" else ("DELETE", path, None)
    if op.kind == "member":
        base = f"/tm/ltm/pool/{segment(partition, op.pool)}/members"
        if op.verb == "create":
            return "POST", base + "/", bm.member_body(spec, partition, True)
        path = f"{base}/{segment(partition, op.name)}"
        return ("PATCH", path, bm.member_body(spec, partition, False)) if op.verb == "update" else ("DELETE", path, None)
    return "DELETE", f"/tm/ltm/node/{segment(partition, op.name)}", None
