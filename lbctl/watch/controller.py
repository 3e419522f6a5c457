"""``lbctl watch``: keep every target in step with the source, for as long as it runs.

Changes from Consul are batched with quiescence timers (wait ``min_wait`` after a
change for more, but never longer than ``max_wait`` after the first), then the
model is rebuilt (only the changed services' pools) and applied to each target
through ``deploy``, the same safe path as ``lbctl apply``.  A failed apply is
retried with exponential backoff; Consul failures keep the last good data (the
watcher never reports a service it has not read).  The guard refuses mass
removals unless forced.  SIGHUP re-reads lbctl.yml and the inventory; SIGTERM
lets the apply in progress finish and stops.  A change made through HAProxy's
Runtime API is verified (process, probes) and written to its file at most
``write_delay`` later (one check and one write for every change in between), and
before a re-read or a stop.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from lbctl import deploy, guard, inventory, model
from lbctl.audit import AuditLog
from lbctl.config.consul import ConsulSettings, ElectionSettings
from lbctl.config.watch import WatchSettings
from lbctl.discovery import consul_model, merge, routes
from lbctl.discovery.consul import Client
from lbctl.watch.election import Election
from lbctl.discovery.watcher import ConsulWatcher
from lbctl.errors import ConfigError, LbctlError
from lbctl.targets.base import Target
from lbctl.watch import writes
from lbctl.watch.metrics import Metrics

log = logging.getLogger("lbctl.watch")
TICK = 0.25  # how often the loop looks at signals while idle
GC_EVERY = 30.0  # seconds between garbage collections, run only while no change waits


@dataclass
class Setup:
    """What one reading of lbctl.yml gives the controller."""

    parts: inventory.Parts
    targets: list[Target]
    watch: WatchSettings
    consul: ConsulSettings | None = None
    election: ElectionSettings | None = None
    audit: AuditLog | None = None
    guard: guard.Policy = guard.Policy()  # the removal guard's limits (lbctl.yml ``guard:``)
    inventory: Path | None = None  # the inventory file, for the start-up lines
    static: dict[str, model.Pool] = field(init=False)  # the inventory's own pools, built once

    def __post_init__(self) -> None:
        self.static = merge.static_pools(self.parts)


class Controller:
    def __init__(self, load: Callable[[], Setup], force: bool = False, clock: Callable[[], float] = time.monotonic,
                 metrics: Metrics | None = None):
        self.load = load
        self.force = force
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.election: Election | None = None
        self.beat = clock()
        self.wake = threading.Condition()
        self.quiet = threading.Event()  # no round under way or due: the feeds' bodies may be read
        self.dirty: set[str] = set()
        self.first_change: float | None = None
        self.last_change = 0.0
        self.stop_requested = False
        self.reload_requested = False
        self.watcher: ConsulWatcher | None = None
        self.pools: dict[str, model.Pool] = {}
        self.book, self.refused = routes.Book(0), set()  # services' routes (start sets the grace), refusals warned
        self.built: tuple[model.Desired, dict[str, int]] | None = None  # the last model, where each pool is in it
        self.applied: model.Desired | None = None
        self.retry_at: float | None = None
        self.backoff = 0.0
        self.applies = 0  # deploy rounds completed (for tests and metrics)
        self.refusals: dict[str, str] = {}  # target -> the guard's refusal, until it applies or is approved

    # -- signals and callbacks ----------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        with self.wake:
            self.stop_requested = True
            self.wake.notify_all()

    def request_reload(self, *_: object) -> None:
        with self.wake:
            self.reload_requested = True
            self.wake.notify_all()

    def changed(self, names: set[str]) -> None:
        with self.wake:
            now = self.clock()
            self.dirty |= names
            self.first_change = self.first_change or now
            self.last_change = now
            self.quiet.clear()
            self.wake.notify_all()

    # -- the loop -------------------------------------------------------------------------

    def run(self, _iterations: int | None = None) -> None:
        """Until SIGTERM (or ``_iterations`` deploy rounds, for tests)."""
        self.start(self.load())
        # A full collection scans every object, 50,000 service entries at 10,000 services:
        # run it when idle, not in the middle of a change, and freeze what survives, so
        # that each one scans only what is new since the last.
        collecting = gc.isenabled()
        gc.disable()
        collected = self.clock() - GC_EVERY  # the first one once the start-up round is done
        try:
            while not self.stop_requested and (_iterations is None or self.applies < _iterations):
                self.beat = self.clock()
                if not self.dirty and self.beat - collected > GC_EVERY:
                    gc.collect()
                    gc.freeze()  # what survived stays out of the next collections (see restart)
                    collected = self.clock()
                if self.reload_requested:
                    self.reload_requested = False
                    self.restart()
                writing = self.write_due()
                if writing is not None and writing <= time.monotonic():
                    self.write()  # first: a steady stream of changes must not hold the file back
                elif self.due():
                    self.round()
                else:
                    with self.wake:
                        if not (self.stop_requested or self.reload_requested):
                            self.quiet.set()
                            self.wake.wait(self.idle_wait())
        finally:
            self.quiet.set()
            self.write(every=True)
            self.shutdown()
            gc.unfreeze()
            if collecting:
                gc.enable()

    def start(self, setup: Setup) -> None:
        self.setup = setup
        self.pools, self.built = {}, None
        self.book, self.refused = routes.Book(setup.watch.route_grace_ms / 1000), set()
        self.policy = replace(setup.guard, force=self.force)
        for line in startup_lines(setup, self.force):
            log.info("%s", line)
        for target in setup.targets:
            target.state.listeners[:] = [self.metrics.record] + ([setup.audit] if setup.audit else [])
        self.metrics.follow_vrrp([t for t in setup.targets if hasattr(t, "node_report")])
        if setup.consul is not None:
            retry_max = setup.watch.retry_max_ms / 1000
            client = Client(setup.consul, self.metrics.consul_request, retry_max)
            # A feed's answer (every check: 15 MB at 10,000 services) waits, unread, for the round
            # of a change already known: on two cores, reading and comparing it beside that round
            # made the round wait for the CPU (docs/consul.md, "The feeds yield").
            client.yield_to = self.quiet.wait
            self.watcher = ConsulWatcher(client, self.changed, retry_max)
            self.metrics.follow_consul(self.watcher.age, lambda: client.in_use)
            self.watcher.start()
        self.metrics.leader.set(0 if setup.election else 1)
        if setup.election is not None:
            e = setup.election
            api = Client(e.consul or setup.consul).api
            self.election = Election(api, e.key, e.name, e.ttl_s, e.lock_delay_s, self.leadership)
            self.election.start()
        self.changed({"*"})  # the first round applies whatever the source holds

    def shutdown(self) -> None:
        if self.election:
            self.election.stop()  # release the lock before destroying the session
            self.election = None
        if self.watcher:
            self.watcher.stop()
            self.watcher = None

    def leadership(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            self.changed({"*"})  # a new leader syncs the shared targets at once

    # -- what /healthz and /readyz report ---------------------------------------------

    def alive(self) -> bool:
        return self.clock() - self.beat < 10 * TICK + 30

    def ready(self) -> tuple[bool, str]:
        """Synced and fresh; the body also names every change the guard holds back."""
        ok, why = self.synced()
        held = "".join(f"\nrefused: {text}" for text in self.refusals.values())
        return ok, why + held

    def synced(self) -> tuple[bool, str]:
        if self.applied is None:
            return False, "not synced yet"
        if self.watcher is not None:
            age = self.watcher.age()
            limit = self.setup.consul.wait_ms / 1000 * 1.5 + 10
            if age is None or age > limit:
                return False, f"discovery data is stale ({age or 0:.0f}s old, limit {limit:.0f}s)"
        return True, "ready"

    def restart(self) -> None:
        log.info("SIGHUP: reading the configuration again")
        try:
            setup = self.load()
        except LbctlError as exc:
            log.error("%s; keeping the running configuration", exc)
            return
        self.write(every=True)
        self.shutdown()
        gc.unfreeze()  # the old watcher's threads and sessions may be collected now
        self.start(setup)

    # -- file writes the runtime API path left behind (deploy's ``defer``) ---------------

    def write_due(self) -> float | None:
        """When (``time.monotonic``) a file must be written, or a write finished; None if never."""
        return writes.due_at(self.setup.targets)

    def idle_wait(self) -> float:
        due = self.write_due()
        return TICK if due is None else max(0.0, min(TICK, due - time.monotonic()))

    def write(self, every: bool = False) -> None:
        """The file writes runtime changes left behind (``writes.write``; ``every``: all of
        them, waited for, before a re-read or exit)."""
        writes.write(self.setup.targets, self.fence_of, every, self.poke, self.write_failed)

    def fence_of(self, target: Target) -> Callable[[], None] | None:
        return self.election.fence if self.election is not None and target.shared else None

    def poke(self) -> None:
        """Wake the loop (a file write ended)."""
        with self.wake:
            self.wake.notify_all()

    def write_failed(self, exc: LbctlError) -> None:
        log.error("%s", exc)
        self.changed({"*"})  # the runtime change was undone: try the whole change again
        self.schedule_retry()

    def due(self) -> bool:
        """Whether the quiescence timers (or a retry) say it is time to apply."""
        now = self.clock()
        if self.retry_at is not None and now >= self.retry_at:
            return True
        if any(t.name in self.refusals and t.state.approval() for t in self.setup.targets):
            return True  # lbctl approve: apply the refused change now
        if self.grace_due():
            return True
        if not self.dirty or (self.watcher and not self.watcher.ready()):
            return False
        w = self.setup.watch
        return now - self.last_change >= w.min_wait_ms / 1000 or now - (self.first_change or now) >= w.max_wait_ms / 1000

    def round(self) -> None:
        with self.wake:
            dirty, self.dirty, self.first_change = self.dirty, set(), None
        self.retry_at = None
        try:
            desired = self.build(dirty)
        except LbctlError as exc:
            log.error("cannot build the model: %s", exc)
            self.schedule_retry()
            return
        self.metrics.pools(desired, None if "*" in dirty else dirty, self.built[1] if self.built else None)
        changes = "; ".join(guard.member_changes(self.applied, desired))
        ok = True
        for target in self.setup.targets:
            shared = self.election is not None and target.shared
            if shared and not self.election.leading:
                continue  # a follower: the leader writes to shared targets
            target.state.leader = self.election.me if shared else None  # who wrote, for the audit log
            try:
                outcome = deploy.deploy(target, desired, fence=self.election.fence if shared else None,
                                        policy=self.policy, defer=True)
                self.refusals.pop(target.name, None)
                self.metrics.renders.labels(target.name, "ok").inc()
                if outcome.result != "unchanged":
                    log.info("%s%s", outcome.message, f" ({changes})" if changes else "")
            except guard.Refused as exc:  # held until the source changes again or an operator approves
                self.refusals[target.name] = str(exc)
                log.error("%s; to apply it anyway: lbctl approve -t %s", exc, target.name)
            except LbctlError as exc:
                self.metrics.renders.labels(target.name, "error" if isinstance(exc, ConfigError) else "ok").inc()
                ok = False
                log.error("%s", exc)
        self.applies += 1
        if ok:
            self.backoff = 0.0
            if not self.refusals:
                self.applied = desired
            waits = [t.recheck_after for t in self.setup.targets if t.recheck_after is not None]
            if waits:  # members drain on a device: sync again when the first drain may end
                self.retry_at = self.clock() + max(0.5, min(waits))
        else:
            self.schedule_retry()

    def build(self, dirty: set[str]) -> model.Desired:
        """The model, rebuilding only the pools of services that changed."""
        built, self.built = self.built, None
        if self.watcher is None:
            self.metrics.routes(self.setup.parts.listeners, [])
            return merge.desired(self.setup.parts, self.setup.static, self.pools)
        # Every service that stops being watched is reported (``changed``): a round
        # looks at its dirty ones only, unless it is told to look at all ("*").
        every = "*" in dirty
        entries = self.watcher.snapshot(None if every else dirty)
        policy = consul_model.Policy(self.setup.consul.include_warning)
        now = self.clock()
        gone = [name for name in (list(self.pools) if every else dirty) if name not in entries]
        moved = self.book.expire(now)  # routes of services gone longer than route_grace
        for name in gone:
            self.pools.pop(name, None)
            moved = self.book.gone(name, now) or moved
        rebuilt = {}
        for name in entries:
            pool, problems = merge.service_pool(self.setup.parts, name, entries[name], policy)
            claim, found = routes.declared(name, entries[name]) if pool is not None else (None, [])
            for text in problems + found:
                log.warning("%s", text)
            if pool is not None:
                self.pools[name] = rebuilt[name] = pool
            else:
                self.pools.pop(name, None)
                gone.append(name)
            if claim is None and not entries[name]:  # its last instance went: the grace applies
                moved = self.book.gone(name, now) or moved
            else:
                moved = self.book.update(name, claim, now) or moved
        # The pools of the last model with the rebuilt ones in place, unless one went
        # (its inventory pool or an empty one comes back) or came, or a route did.
        desired = merge.replace_pools(built[0], built[1], rebuilt) if built and not (every or gone or moved) else None
        if desired is None:
            listeners, refused = routes.resolve(self.setup.parts.listeners, self.book.claims.values())
            self.report(listeners, refused)
            desired = merge.desired(self.setup.parts, self.setup.static, self.pools, listeners)
            built = (desired, merge.positions(desired))
        self.built = (desired, built[1])
        return desired

    def report(self, listeners: tuple[model.Listener, ...], refused: list[routes.Refusal]) -> None:
        """Warn once about each route refused (until it is served or no longer declared); set the gauges."""
        texts = {r.text() for r in refused}
        for text in sorted(texts - self.refused):
            log.warning("%s", text)
        self.refused = texts
        self.metrics.routes(listeners, refused)

    def grace_due(self) -> bool:
        """Whether a service's route_grace ran out (its route goes in the next round)."""
        expiry = self.book.next_expiry()
        return expiry is not None and self.clock() >= expiry

    def schedule_retry(self) -> None:
        cap = self.setup.watch.retry_max_ms / 1000
        self.backoff = min(cap, self.backoff * 2 or 0.5)
        self.retry_at = self.clock() + self.backoff
        log.info("retrying in %.1fs", self.backoff)


def startup_lines(setup: Setup, force: bool) -> list[str]:
    """What ``lbctl watch`` says it watches and writes to, one line each, when it starts."""
    lines = []
    if setup.consul is not None:
        c = setup.consul
        chosen = [f"services {', '.join(c.services)}" if c.services else "",
                  f"tag {c.tag}" if c.tag else "", f"filter {c.filter!r}" if c.filter else ""]
        lines.append(f"source: Consul {c.scheme}://{c.host}:{c.port}, {' and '.join(x for x in chosen if x)}, "
                     f"health {'passing or warning' if c.include_warning else 'passing'}")
    if setup.inventory is not None:
        lines.append(f"source: inventory {setup.inventory} ({len(setup.parts.listeners)} listeners, "
                     f"{len(setup.parts.pools)} pools)")
    for t in setup.targets:
        lines.append(f"target {t.name}: {t.kind} {t.location}{t.endpoints()}{', shared (leader only)' if t.shared else ''}")
    g = setup.guard
    lines.append("guard: off (--force)" if force else
                 f"guard: max_removal {g.max_removal:.0%}, min_members {g.min_members}; "
                 "a refused change waits for: lbctl approve -t TARGET")
    return lines
