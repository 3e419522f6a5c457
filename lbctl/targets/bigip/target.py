"""An F5 BIG-IP as an lbctl target (docs/bigip.md).

``mode: imperative`` reads the partition's pools and monitors, diffs them
against the model in pure code (``bigip_diff``), and applies one sync in one
iControl REST transaction.  ``mode: as3`` declares the same pools and monitors
as one AS3 tenant.  Either way ``deploy`` sees the usual contract:

- ``plan``: reads the device; the Change's ``summary`` is the semantic diff.
- ``check``: the values were checked building the plan; AS3 declarations are
  checked against F5's schema; ``device_check: true`` also runs the transaction
  with ``validateOnly`` (a second pass over the device: off by default, since a
  commit is all-or-nothing anyway).
- ``apply``: one transaction (or one declaration).  A failed one is read back to
  confirm nothing changed.
- ``reload``: ``save sys config`` (``save_config``, imperative mode: AS3 saves by
  itself) and ``config-sync to-group`` (``sync_group``), done once ``cm/sync-status``
  says In Sync (group.py); with several ``devices``, the ACTIVE one is written to.
- ``verify``: reads back and compares with what the change's plan expects.
- ``rollback``: the inverse, again as one transaction (or the previous declaration).

The plan travels in the change (``Change.detail``, a ``Detail``): the target
keeps nothing between ``apply`` and ``verify``.  A BIG-IP keeps no file backups,
so it is not ``Restorable``.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from lbctl import guard, redact
from lbctl import config as cfg
from lbctl import model
from lbctl.targets.bigip.settings import BigIPSettings
from lbctl.errors import ConfigError, LbctlError, ReloadError, RollbackError, ValidationError, VerifyError
from lbctl.targets.bigip import as3
from lbctl.targets.bigip import diff
from lbctl.targets.bigip import model as bm
from lbctl.targets.bigip import icontrol
from lbctl.targets.base import Change, Checkpoint, Target
from lbctl.targets.state import TargetState

READ_BACK_ONE_BY_ONE = 10  # verify reads back at most this many pools one by one, else the partition
CONNECTIONS_POLL = 15.0    # while members drain, look at their connections this often


@dataclass(frozen=True)
class Detail:
    """A BIG-IP change behind its texts (``Change.detail``): the plan, and in AS3 mode
    the declaration and the tenant before.  ``undo``: a rollback's, whose plan goes
    back to the state before the failed change; verify then reads everything back."""

    plan: diff.Plan
    declaration: dict | None = None
    previous: dict | None = None
    undo: bool = False
    routes_moved: bool = False  # AS3: the listeners' route policies differ from the tenant's

    @property
    def noop(self) -> bool:
        return not self.plan.ops and not self.routes_moved

    @property
    def touched(self) -> set[str] | None:
        """The pools verify reads back one by one (None: all of them)."""
        touched = {op.pool or op.name for op in self.plan.ops if op.kind in ("pool", "member")}
        return touched if len(touched) <= READ_BACK_ONE_BY_ONE and not self.undo else None

    @property
    def monitors(self) -> bool:
        """Whether verify reads the monitors back (False: the change left them alone)."""
        return self.undo or self.plan.before[1] != self.plan.after[1]


class BigIPTarget(Target):
    """A BIG-IP partition (or AS3 tenant): its ``Change.detail`` is a ``Detail``."""

    kind = "bigip"
    reloaded = "saved its configuration"

    def __init__(self, settings: cfg.Target, render: Any = None, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.opts: BigIPSettings = settings.options
        self.name = settings.name
        self.clock, self.sleep = clock, sleep
        opts = self.opts
        verify: bool | str = opts.verify
        if opts.verify:  # one CA bundle for the login and every request: ours, else the one requests would use
            verify = str(opts.ca_bundle) if opts.ca_bundle else (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True)
        accesses = [icontrol.Access(host, port, opts.username, self.password, verify=verify,
                                    timeout=opts.timeout_ms / 1000, retries=opts.retries,
                                    backoff=opts.backoff_ms / 1000)
                    for host, port in (opts.devices or ((opts.host, opts.port),))]
        self.devices = [icontrol.BigIP(self.name, access, sleep) for access in accesses]
        self._device: icontrol.BigIP | None = self.devices[0] if len(self.devices) == 1 else None
        self.as3 = opts.mode == "as3"
        self.partition = as3.folder(opts.as3_tenant) if self.as3 else opts.partition
        where = f"AS3 tenant {opts.as3_tenant}" if self.as3 else f"partition {opts.partition}"
        self.location = f"{' or '.join(a.url for a in accesses)} {where}"
        self.shared = settings.shared
        self.state = TargetState(settings.state_dir, settings.name, settings.lock_timeout_ms / 1000)
        self.poll = 1.0                      # seconds between AS3 task polls
        # After a plan with members still draining: sync again within this many seconds
        # (a drain ends by time or at zero connections, not by a change in the source).
        self.recheck_after: float | None = None

    @property
    def device(self) -> icontrol.BigIP:
        """The device lbctl writes to: the one, or the ACTIVE one of ``devices`` (asked at each plan)."""
        if self._device is None:
            from lbctl.targets.bigip import group

            self._device = group.active(self.devices)
        return self._device

    def password(self) -> str:
        """The password, from the environment or a file; read at each login, never shown."""
        opts = self.opts
        password = opts.password(f"targets.{self.name}")
        redact.remember_login(opts.username, password)
        return password

    # -- plan ----------------------------------------------------------------------------
    def plan(self, desired: model.Desired) -> Change[Detail]:
        if len(self.devices) > 1:
            self._device = None  # a failover may have moved the ACTIVE role since the last plan
        wanted = bm.wanted(desired, self.partition, self.opts.owner)
        if self.as3:
            previous = self.device.as3_tenant(self.opts.as3_tenant)
            current = as3.parse_tenant(previous, self.opts.as3_tenant, self.opts.owner)
            p = self.diff(current, wanted)
            policies = as3.policies(desired)
            decl = as3.declaration(*p.after, self.opts.as3_tenant, self.opts.owner, policies)
            moved = as3.tenant_policies(previous, self.opts.as3_tenant) != policies
            return self.change(p, declaration=decl, previous=previous, routes_moved=moved)
        return self.change(self.diff(self.device.read(self.partition), wanted))

    def served(self, text: str | None) -> guard.Served:
        return bm.served(text)

    def diff(self, current: bm.DeviceState, wanted: bm.Wanted, drain_time: float | None = None) -> diff.Plan:
        policy = diff.Policy(self.opts.owner, self.clock(),
                             self.opts.drain_time_ms / 1000 if drain_time is None else drain_time)
        for _ in range(5):  # each round reads what the previous one asked for
            p = diff.plan(current, wanted, policy)
            if not p.missing:
                return p
            current = self.device.complete(current, p.missing)
        raise ConfigError(f"{self.name}: the plan kept asking for more device data ({sorted(map(str, p.missing))})")

    def change(self, p: diff.Plan, **extra: Any) -> Change[Detail]:
        self.recheck_after = recheck_after(p, self.clock(), self.opts.drain_time_ms / 1000)
        summary = p.summary + tuple(f"= {line}" for line in p.waiting)
        summary += ("~ the listeners' route policies (AS3 Endpoint_Policy)",) if extra.get("routes_moved") else ()
        return Change(self.name, bm.state_text(*p.before), bm.state_text(*p.after), summary, Detail(p, **extra))

    # -- check, apply ----------------------------------------------------------------------
    def check(self, change: Change[Detail]) -> None:
        """:raises ValidationError: rejected (F5's schema, or ``device_check``).
        :raises ConfigError: ``change`` was not planned by this target."""
        detail = self.detail(change)
        if self.as3:
            try:
                as3.check(detail.declaration)
            except ValidationError as exc:
                raise ValidationError(f"{self.name}: {exc}") from None
        elif self.opts.device_check and detail.plan.ops:
            try:
                self.device.commit(self.partition, detail.plan.ops, validate_only=True)
            except LbctlError as exc:
                raise ValidationError(str(exc).replace("; nothing was changed", "")) from None

    def apply(self, change: Change[Detail]) -> Checkpoint:
        """:raises ApplyError: (or the device error's kind) nothing was changed, as
        read back.  :raises ConfigError: ``change`` was not planned by this target."""
        detail = self.detail(change)
        p = detail.plan
        try:
            if self.as3:
                self.device.as3_declare(detail.declaration, self.opts.as3_timeout_ms / 1000, self.poll)
            else:
                self.device.commit(self.partition, p.ops)
        except LbctlError as exc:
            raise type(exc)(f"{exc}{self.read_back(p.before)}") from None
        return Checkpoint(self.name, None, change)

    def detail(self, change: Change[Detail]) -> Detail:
        """The plan behind ``change``.  :raises ConfigError: it has none (a change
        made from texts alone: a BIG-IP is not ``Restorable``)."""
        if change.detail is None:
            raise ConfigError(f"{self.name}: a bigip target takes only the changes its own plan made "
                              "(it keeps no configuration text to restore)")
        return change.detail

    def read_back(self, before: tuple) -> str:
        """After a failed write: does the device still hold what it held before?"""
        try:
            have = self.owned_state()
        except LbctlError:
            return ""
        if have == before:
            return "; read back: nothing was changed"
        return "; read back: the device differs from before (the next sync reads it and converges)"

    def owned_state(self, monitors: bool = True) -> tuple[dict, dict]:
        if self.as3:
            current = as3.parse_tenant(self.device.as3_tenant(self.opts.as3_tenant), self.opts.as3_tenant,
                                       self.opts.owner)
        else:
            current = self.device.read(self.partition, monitors)
        return diff.owned_part(current, self.opts.owner)

    # -- reload, verify, rollback ----------------------------------------------------------
    def reload(self, change: Change) -> None:
        try:
            if self.opts.save_config and not self.as3:
                self.device.save_config()
            if self.opts.sync_group:
                from lbctl.targets.bigip import group

                group.config_sync(self.device, self.opts.sync_group, self.opts.sync_timeout_ms / 1000, self.clock,
                                  self.sleep)
        except LbctlError as exc:
            raise ReloadError(str(exc)) from None

    def verify(self, change: Change[Detail]) -> None:
        """Read back what ``change`` made and compare with its plan's ``after``.

        :raises VerifyError: it differs, or cannot be read.
        """
        detail = change.detail
        if detail is None or detail.noop and not detail.undo:
            return  # nothing was written
        expected = pools, monitors = detail.plan.after
        touched = detail.touched
        owner = self.opts.owner
        try:
            if self.as3:
                have = self.owned_state()
            else:
                if touched is None:
                    have_pools = self.owned_state(monitors=False)[0]
                else:  # a small change: read back only the pools it touched
                    found = self.device.read_pools(self.partition, sorted(touched))
                    have_pools = {**{n: p for n, p in pools.items() if n not in touched},
                                  **{n: p for n, p in found.items() if bm.owned(p.description, owner)}}
                have_monitors = monitors
                if detail.monitors:
                    have_monitors = {n: m for n, m in self.device.read_monitors(self.partition).items()
                                     if bm.owned(m.description, owner)}
                have = (have_pools, have_monitors)
        except LbctlError as exc:
            raise VerifyError(f"{self.name}: cannot read the change back: {exc}") from None
        problem = difference(have, expected)
        if problem:
            raise VerifyError(f"{self.name}: read back after the change: {problem}")

    def rollback(self, checkpoint: Checkpoint) -> Change[Detail]:
        """Put the pools and monitors before ``checkpoint.change`` back.

        :raises RollbackError: it could not.  :raises ConfigError: the change was not planned here.
        """
        failed = self.detail(checkpoint.change)
        before, previous = failed.plan.before, failed.previous
        ops: tuple = ()
        try:
            if self.as3:
                tenant = self.opts.as3_tenant
                if previous is None:
                    self.device.as3_remove(tenant, self.opts.as3_timeout_ms / 1000)
                else:
                    decl = {**as3.declaration({}, {}, tenant, self.opts.owner), tenant: previous}
                    self.device.as3_declare(decl, self.opts.as3_timeout_ms / 1000, self.poll)
            else:
                p = self.diff(self.device.read(self.partition), bm.Wanted(*before), drain_time=0)
                if p.ops:
                    self.device.commit(self.partition, p.ops)
                ops = p.ops
        except LbctlError as exc:
            raise RollbackError(f"{self.name}: could not put the previous pools back: {exc}") from None
        back = replace(failed.plan, ops=ops, summary=(), waiting=(), before=failed.plan.after, after=before)
        return Change(self.name, checkpoint.change.candidate, checkpoint.change.live or "", (),
                      Detail(back, previous=previous, undo=True))

    # -- status ------------------------------------------------------------------------------
    def live_members(self, pools=None) -> dict[str, dict[str, dict]]:
        """Each member's monitor state and session, from one read of the partition's pools (of
        ``pools`` only, if given, made into states).  :raises LbctlError: the device cannot be reached."""
        raw = self.device.request("GET", "/tm/ltm/pool", params=f"$filter=partition+eq+{self.partition}"
                                  "&expandSubcollections=true").json()
        wanted = None if pools is None else set(pools)
        return {p["name"]: bm.live_states(p) for p in raw.get("items", [])
                if icontrol.in_partition(p, self.partition) and (wanted is None or p.get("name") in wanted)}

    def running(self) -> bool:
        try:
            return self.device.root is not None
        except LbctlError:
            return False

    def status(self) -> dict:
        try:
            pools, monitors = self.owned_state()
            sha = hashlib.sha256(bm.state_text(pools, monitors).encode()).hexdigest()
            process = {"running": True, "version": self.device.version, "pools": len(pools),
                       "monitors": len(monitors),
                       "summary": f"reachable, BIG-IP {self.device.version}, {len(pools)} pools and "
                                  f"{len(monitors)} monitors owned by {self.opts.owner}"}
        except LbctlError as exc:
            sha, process = None, {"running": False, "summary": f"not reachable: {exc}"}
        return {"target": self.name, "kind": self.kind, "config": self.location, "sha256": sha,
                "last_apply": self.state.last(), "backups": [], "process": process}


def difference(have: tuple[dict, dict], want: tuple[dict, dict]) -> str | None:
    """The first difference between two (pools, monitors) states, in words (None: equal)."""
    for kind, got, expected in (("pool", have[0], want[0]), ("monitor", have[1], want[1])):
        for name in sorted(set(got) | set(expected)):
            if name not in got:
                return f"{kind} {name} is missing"
            if name not in expected:
                return f"{kind} {name} should not be there"
            if got[name] != expected[name]:
                if kind == "pool":
                    members, wanted = got[name].member_map(), expected[name].member_map()
                    for m in sorted(set(members) | set(wanted)):
                        if members.get(m) != wanted.get(m):
                            return (f"pool {name} member {m}: expected {bm.member_text(wanted[m]) if m in wanted else 'none'}, "
                                    f"found {bm.member_text(members[m]) if m in members else 'none'}")
                return f"{kind} {name}: expected {expected[name]}, found {got[name]}"
    return None


def recheck_after(p: diff.Plan, now: float, drain_time: float) -> float | None:
    """Seconds until a draining member (in ``p.after``) may be deleted; None if none drains."""
    left = [since + drain_time - now for pool in p.after[0].values() for m in pool.members
            if (since := m.draining_since) is not None]
    return max(1.0, min(min(left), CONNECTIONS_POLL)) if left else None
