"""An authoritative DNS zone as an lbctl target, through RFC 2136 UPDATE (docs/dns.md).

- ``plan``: reads the zone from the primary (AXFR, TSIG-signed) and diffs the RRsets
  lbctl owns against the model's names (``records``, ``plan``: pure).
- ``check``: nothing more to check (the values were checked building the plan).
- ``apply``: the change as one UPDATE message whose prerequisites are the RRsets as
  read (a compare-and-swap).  When a concurrent writer made them fail, nothing was
  applied: re-read, re-plan, resend, up to ``retries`` times with a doubling backoff.
  The record set before the change is kept as a backup (``lbctl rollback``).
- ``reload``: nothing (the primary serves an UPDATE at once).
- ``verify``: asks the primary directly for every RRset the change touched.
- ``rollback``: plans the previous record set against the zone and sends it the same way.

The text form (``Change.live``/``candidate``) is the owned record set as zone-file
lines (``records.state_text``), so the removal guard, the audit log and the backups
work as for a file.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lbctl import config as cfg
from lbctl import guard, model
from lbctl.errors import ApplyError, ConfigError, LbctlError, RollbackError, VerifyError
from lbctl.targets import files
from lbctl.targets.base import Change, Checkpoint, Restorable
from lbctl.targets.dns import plan as dplan
from lbctl.targets.dns import records, wire
from lbctl.targets.dns.settings import DnsSettings
from lbctl.targets.state import TargetState

log = logging.getLogger("lbctl.dns")
READ_BACK_ONE_BY_ONE = 200  # verify asks for at most this many RRsets one by one, else reads the zone


@dataclass
class Detail:
    """A dns change behind its texts: the plan, and how to make it again after a
    conflict (the model, or the names of a restored text).  ``sent``: the plan apply
    finally sent (a re-plan after a conflict differs), which verify reads back."""

    plan: dplan.Plan
    names: Callable[[], dict[str, records.Name]]
    sent: dplan.Plan | None = None
    updates: list[int] = field(default_factory=list)  # bytes of each UPDATE message sent

    @property
    def noop(self) -> bool:
        return self.plan.noop


class DnsTarget(Restorable):
    """A zone on its primary: its ``Change.detail`` is a ``Detail``."""

    kind = "dns"
    live_note = "a DNS target publishes records; it has no member states"
    reloaded = "answers with the new records (asked directly)"

    def __init__(self, settings: cfg.Target, render: Any = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.opts: DnsSettings = settings.options
        self.name = settings.name
        self.sleep = sleep
        self.location = f"zone {self.opts.zone} on {wire.where(self.opts.server, self.opts.port)}"
        self.shared = settings.shared
        self.state = TargetState(settings.state_dir, settings.name, settings.lock_timeout_ms / 1000)
        self.backups = files.BackupStore(settings.state_dir / "backups", settings.keep_backups)
        self.records_file = settings.state_dir / "records.txt"  # what the backups are copies of
        # The zone as last read (its serial, its RRsets), kept up to date with lbctl's own UPDATEs: a
        # plan transfers the zone again only when the SOA serial says someone else changed it.
        self.zone: tuple[int, records.State] | None = None
        self.states: dict[str, records.State] = {}  # the texts of the last change, parsed (``served``)

    def server(self) -> wire.Server:
        """The primary and the key; the secret is read now, never kept."""
        o = self.opts
        return wire.Server(o.server, o.port, o.zone, o.key_name, o.key_algorithm, o.secret(f"targets.{self.name}"),
                           o.timeout_ms / 1000)

    def endpoints(self) -> str:
        return f", TSIG key {self.opts.key_name}, owner {self.opts.owner}"

    # -- plan ----------------------------------------------------------------------------
    def plan(self, desired: model.Desired) -> Change[Detail]:
        o = self.opts
        return self.change(lambda: records.wanted(desired, o.zone, o.owner, o.ttl))

    def plan_text(self, candidate: str) -> Change[Detail]:
        """A record set in text form (a backup): lbctl's own names in it, made this owner's."""
        state = records.parse(candidate, f"{self.name}: the record set to restore")

        def names() -> dict[str, records.Name]:
            found = records.names_of(state)
            for name in found.values():
                name.owner = self.opts.owner
            return found
        return self.change(names)

    def change(self, names: Callable[[], dict[str, records.Name]]) -> Change[Detail]:
        p = self.replan(self.server(), names)
        for line in p.summary:
            if line.startswith("= "):  # kept records: said even when nothing changes (plan, apply, watch)
                log.warning("%s: %s", self.name, line[2:])
        live, candidate = records.state_text(p.before), records.state_text(p.after)
        self.states = {live: p.before, candidate: p.after}
        return Change(self.name, live, candidate, p.summary, Detail(p, names))

    def replan(self, server: wire.Server, names: Callable[[], dict[str, records.Name]],
               fresh: bool = False) -> dplan.Plan:
        try:
            serial, zone = self.read(server, fresh)
            return dplan.plan(zone, names(), self.opts.owner, self.opts.ttl, serial)
        except LbctlError as exc:
            raise type(exc)(f"{self.name}: {exc}") from None

    def read(self, server: wire.Server, fresh: bool = False) -> tuple[int, records.State]:
        """The zone: what was read last while the serial has not moved (one SOA query),
        else a transfer.  Only an optimisation: the UPDATE's prerequisites still check
        every RRset it changes against the server."""
        if fresh or self.zone is None or wire.serial(server) != self.zone[0]:
            self.zone = wire.read(server)
        return self.zone

    def sent(self, server: wire.Server, p: dplan.Plan, messages: int) -> None:
        """After ``p`` went through in ``messages`` UPDATEs: the zone as it is now, if nobody
        else wrote in between (the serial moved by exactly one per message), else forget it."""
        if self.zone is None or self.zone[0] != p.serial:
            self.zone = None
            return
        try:
            serial = wire.serial(server)
        except LbctlError:  # the UPDATE went through: only the copy is lost
            serial = None
        if serial != (p.serial + messages) % 2 ** 32:
            self.zone = None
            return
        state = dict(self.zone[1])
        for op in p.ops:
            if op.new is None:
                state.pop(op.key, None)
            else:
                state[op.key] = op.new
        self.zone = serial, state

    def served(self, text: str | None) -> guard.Served:
        state = self.states.get(text or "")
        return records.served(state if state is not None else records.parse(text or "", self.name))

    # -- check, apply ----------------------------------------------------------------------
    def check(self, change: Change[Detail]) -> None:
        self.detail(change)

    def apply(self, change: Change[Detail]) -> Checkpoint:
        """:raises ApplyError: nothing was changed (a conflict that outlived the retries,
        a refusal).  :raises wire.Unreachable: the primary does not answer."""
        detail = self.detail(change)
        backup = self.backup_of(detail.plan.before)
        detail.sent = self.send(detail.plan, detail)
        return Checkpoint(self.name, backup, change)

    def send(self, p: dplan.Plan, detail: Detail) -> dplan.Plan:
        """Send ``p``; on a conflict re-read, re-plan (``detail.names``) and resend.  The plan sent."""
        server = self.server()
        o = self.opts
        for attempt in range(o.retries + 1):
            chunks, done = wire.messages(p.ops), 0
            try:
                for ops in chunks:
                    detail.updates.append(wire.update(server, ops))
                    done += 1
                self.sent(server, p, len(chunks))
                log.debug("%s: %d RRsets changed in %d UPDATE message(s), %d bytes", self.name, len(p.ops),
                         len(detail.updates), sum(detail.updates))
                return p
            except wire.Conflict as exc:
                if attempt == o.retries:
                    raise ApplyError(f"{self.name}: {exc}; gave up after {o.retries} retries") from None
                self.sleep(o.backoff_ms / 1000 * 2 ** attempt)
                p = self.replan(server, detail.names, fresh=True)
            except LbctlError as exc:
                self.zone = None
                part = (f"; {done} of the change's {len(chunks)} UPDATEs (whole names each) went through: the next "
                        "plan reads the zone again") if done else ""
                raise type(exc)(f"{self.name}: {exc}{part}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def backup_of(self, before: records.State) -> str | None:
        """Keep the record set before a change (``lbctl rollback`` restores the newest)."""
        try:
            files.atomic_write(self.records_file, records.state_text(before), mode=0o600)
            return self.backups.save(self.records_file).id
        except ApplyError as exc:
            raise ApplyError(f"{self.name}: {exc}") from None

    def detail(self, change: Change[Detail]) -> Detail:
        if change.detail is None:
            return self.plan_text(change.candidate).detail
        return change.detail

    # -- reload, verify, rollback ----------------------------------------------------------
    def reload(self, change: Change) -> None:
        """Nothing: the primary serves an UPDATE as soon as it answers it."""

    def verify(self, change: Change[Detail]) -> None:
        """Ask the primary for every RRset the change touched.  :raises VerifyError: one differs."""
        detail = self.detail(change)
        p = detail.sent or detail.plan
        if not p.ops:
            return
        try:
            server = self.server()
            if len(p.ops) > READ_BACK_ONE_BY_ONE:
                zone = wire.read(server)[1]
                have = {op.key: zone[op.key].rdatas if op.key in zone else () for op in p.ops}
            else:
                have = wire.query(server, [op.key for op in p.ops])
        except LbctlError as exc:
            raise VerifyError(f"{self.name}: cannot read the records back: {exc}") from None
        for op in p.ops:
            want = op.new.rdatas if op.new else ()
            if have.get(op.key, ()) != want:
                raise VerifyError(f"{self.name}: the primary answers {op.key[0]} {op.key[1]} with "
                                  f"{', '.join(have.get(op.key, ())) or 'nothing'}, expected {', '.join(want) or 'nothing'}")

    def rollback(self, checkpoint: Checkpoint) -> Change[Detail]:
        """Put the record set before ``checkpoint.change`` back, as one UPDATE.  :raises RollbackError:"""
        failed = self.detail(checkpoint.change)
        before = (failed.sent or failed.plan).before
        try:
            back = self.plan_text(records.state_text(before))
            back.detail.sent = self.send(back.detail.plan, back.detail)
        except LbctlError as exc:
            raise RollbackError(f"{self.name}: could not put the previous records back: {exc}") from None
        return back

    def backup(self, backup_id: str | None) -> files.Backup:
        backup = self.backups.get(backup_id) if backup_id else self.backups.latest(self.records_file)
        if backup is None:
            raise ConfigError(f"{self.name}: no record sets saved yet in {self.backups.directory} (lbctl apply saves one)")
        return backup

    # -- status ------------------------------------------------------------------------------
    def running(self) -> bool:
        """True: the plan has just read the zone (an unreachable primary fails the plan)."""
        return True

    def status(self) -> dict:
        try:
            serial, zone = wire.read(self.server())
            owned = records.names_of(zone, self.opts.owner)
            text = records.state_text({k: zone[k] for n in owned.values() for k in (*n.rrsets, (n.registry, "TXT"))})
            sha = hashlib.sha256(text.encode()).hexdigest()
            listed = ", ".join(sorted(owned)) or "none"
            process = {"running": True, "serial": serial, "names": sorted(owned),
                       "summary": f"reachable, serial {serial}, {len(owned)} names owned by {self.opts.owner}: {listed}"}
        except LbctlError as exc:
            sha, process = None, {"running": False, "summary": f"not reachable: {exc}"}
        return {"target": self.name, "kind": self.kind, "config": self.location, "sha256": sha,
                "last_apply": self.state.last(), "backups": [b.id for b in self.backups.list(self.records_file)],
                "process": process}
