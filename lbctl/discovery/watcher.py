"""Keeps every watched service's health entries current with a bounded number of
connections to Consul, whatever the number of services (docs/consul.md, "How lbctl
watches").

Two blocking queries make a change feed:

* ``/v1/catalog/services`` (with the filter): which services exist, with their tags;
* ``/v1/health/state/any``: every check; the difference between two answers names
  the services whose checks changed (``checks.diff``), a node check every service
  on that node.

Readers (the connections the feeds and the hot queries below leave) then read
``/v1/health/service/<name>`` without blocking, for only those services.  A
catalog index that moved with no change the check feed explains
(``checks.Marks``: an instance without checks, an edit of address, port, meta or
weights alone) has the services with check-less instances read at once, then a
hunt: the other services, changed-last first, at ``SWEEP_RATE`` reads a second
behind the changes, until one answers with that index (one raft index is one
write, to one service).  An index a read already answered with is not looked
for: that read had the write.

The services that changed last also hold a blocking ``/v1/health/service/<name>``
query each (``hotset``), which answers any change of them without the check feed, a
re-read or a hunt.  While a service's query is held, the feed queues no read of it;
a service that leaves the hot set is read once more, so nothing is lost.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Callable, Iterable

from lbctl.discovery import checks, consul_model
from lbctl.discovery.consul import BACKOFF_START, Bucket, Client, SameBody, Watch, selected
from lbctl.discovery.hotset import FEEDS, HotSet, hot_slots
from lbctl.errors import DiscoveryError

log = logging.getLogger("lbctl.consul")
EXPLAIN_WITHIN = 3.0  # seconds the check feed has to explain a catalog index
SWEEP_RATE = 500.0  # re-reads a second when a sweep is due
RECENT = 1024  # services remembered as changed lately (swept first)
QUIET = 5.0  # seconds without an error after which a query counts as answering again


class ConsulWatcher:
    def __init__(self, client: Client, on_change: Callable[[set[str]], None], retry_max: float) -> None:
        self.client = client
        self.settings = client.settings
        self.on_change = on_change
        self.retry_max = retry_max
        self.lock = threading.Condition()
        self.stopped = threading.Event()
        self.entries: dict[str, list] = {}
        self.why: dict[str, dict[str, dict]] = {}  # service → member → its failing check (the operator page)
        self.wanted: set[str] = set()
        self.catalog: dict[str, frozenset] | None = None  # name → tags, as last read
        self.raw_catalog: dict = {}  # the catalog's last answer, as decoded
        self.same_catalog = SameBody()  # the same bytes: the same object (raw_catalog)
        self.complete = False  # every watched service has been read (until a new one is watched)
        self.hunt_order: list[str] | None = None  # the services a hunt reads after the recent ones
        self.catalog_index = 0
        self.book: checks.Book | None = None  # the checks as last read
        self.marks = checks.Marks()
        self.bumps: dict[int, float] = {}  # catalog index not yet explained → deadline
        self.nodes_of: dict[str, set[str]] = {}  # service → the nodes of its instances
        self.on_node: dict[str, set[str]] = {}  # node → services with an instance on it
        self.checkless: set[str] = set()  # services with an instance without checks of its own
        self.urgent: dict[str, None] = {}  # services to read, in order
        self.sweep: dict[str, None] = {}  # services to read again when nothing is urgent
        self.hunt: dict[str, None] = {}  # services to read until each hunted index is found
        self.hunted: set[int] = set()  # catalog indexes that no check explains
        self.sweep_next = 0.0
        self.recent: dict[str, None] = {}  # services whose data changed, the last one last
        self.read_at: dict[int, None] = {}  # the last RECENT indexes reads answered with
        self.busy: set[str] = set()  # being read
        self.again: dict[str, bool] = {}  # asked for while being read (urgent or not)
        self.failing: dict[str, float] = {}  # query → when it last failed
        self.warned: set[str] = set()
        self.threads: list[threading.Thread] = []
        self.index_of: dict[str, int] = {}  # service → the index its entries were read at
        self.hot = HotSet()  # services whose own blocking query is held
        self.hot_wake = threading.Condition(self.lock)  # a service changed: the hot set may move

    def start(self) -> None:
        interval = self.settings.min_query_interval_ms / 1000
        self.threads = [Watch("catalog", lambda index: self.client.services(index, self.same_catalog), self._catalog,
                              self._error, interval, self.retry_max),
                        Watch("checks", lambda index: self.client.checks(index, self.book), self._checks,
                              self._error, interval, self.retry_max)]
        hot = hot_slots(self.settings.max_connections)
        self.threads += [threading.Thread(target=self._hot, args=(interval,), name=f"consul hot {i}", daemon=True)
                         for i in range(hot)]
        self.threads += [threading.Thread(target=self._reader, name=f"consul reader {i}", daemon=True)
                         for i in range(self.settings.max_connections - FEEDS - hot)]
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopped.set()
        for t in self.threads:
            if isinstance(t, Watch):
                t.cancel()
        with self.lock:
            self.lock.notify_all()
            self.hot_wake.notify_all()
        self.client.close()

    def ready(self) -> bool:
        """Both feeds and every watched service have answered at least once."""
        with self.lock:
            if not self.complete and self.catalog is not None and self.book is not None:
                self.complete = all(n in self.entries for n in self.wanted)  # until a new service is watched
            return self.complete

    def snapshot(self, names: Iterable[str] | None = None) -> dict[str, list]:
        """The entries of every watched service read so far (of ``names`` only, if given)."""
        with self.lock:
            names = self.wanted if names is None else self.wanted.intersection(names)
            return {name: self.entries[name] for name in names if name in self.entries}

    def failing_checks(self, names: Iterable[str]) -> dict[str, dict[str, dict]]:
        """Of the services ``names``: member → the check that keeps it out (``consul_model.failing``)."""
        with self.lock:
            return {name: self.why[name] for name in names if name in self.why}

    def age(self) -> float | None:
        """Seconds since Consul last answered (None before the first answer)."""
        last = self.client.last_answer
        return time.monotonic() - last if last else None

    # -- the feeds ---------------------------------------------------------------------

    def _catalog(self, index: int, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        if self.catalog is not None and data is self.raw_catalog:  # an instance came or went: the same services
            names, problems, tags = self.wanted, [], self.catalog
        else:
            names, problems = selected(self.settings, data)
            tags = {name: frozenset(map(str, t)) if isinstance(t, list) else frozenset() for name, t in data.items()}
        self.raw_catalog = data  # only this thread reads it
        # Same data, higher index: was a check written at this index?  If the checks
        # table is still below it, no: the write touched only the services table.
        same = tags is self.catalog or self.catalog == tags
        quiet = same and index > self.catalog_index and self._checks_below(index)
        with self.lock:
            self._answered("catalog")
            for text in problems:
                if text not in self.warned:
                    self.warned.add(text)
                    log.warning("%s", text)
            old = self.catalog
            if old is not None and index > self.catalog_index and same:
                self.bumps[index] = 0.0 if quiet else time.monotonic() + EXPLAIN_WITHIN
            elif old is not None and index < self.catalog_index:
                self.index_of.clear()  # a restored server: indexes start again lower
                self._queue(names, urgent=False)  # read everything again
            removed = set() if names is self.wanted else self.wanted - names
            for name in removed:
                self._forget(name)
            if names is not self.wanted:
                self.complete, self.hunt_order = False, None
            moved = set() if tags is old else {n for n in names if old is None or old.get(n) != tags.get(n)}
            self.wanted, self.catalog, self.catalog_index = names, tags, index
            self._queue(moved, urgent=True)
            self._resolve()
        if removed:
            self.on_change(removed)

    def _checks(self, index: int, reading: checks.Reading) -> None:
        if self.book is None:  # the baseline: readers start now, so no change is lost
            book = checks.Book(reading)
            with self.lock:
                self._answered("checks")
                self.book, self.marks.index = book, index
                self.lock.notify_all()
            return
        before = self.marks.index  # only this thread writes it
        found = self.book.update(reading, before if index > before else 0)  # outside the lock
        with self.lock:
            self._answered("checks")
            self.marks.add(found, before, index)
            names = set(found.services)
            for node in found.nodes:
                names |= self.on_node.get(node, set())
            self._queue({n for n in names & self.wanted if n not in self.hot}, urgent=True)  # hot: its query answers
            self._resolve()

    def _checks_below(self, index: int) -> bool:
        """Whether the checks table's index is below ``index`` (one small request; False if it fails)."""
        try:
            return self.client.checks_index() < index
        except DiscoveryError:
            return False  # the check feed decides, within EXPLAIN_WITHIN

    def _error(self, key: str, exc: DiscoveryError) -> None:
        with self.lock:
            first = key not in self.failing
            self.failing[key] = time.monotonic()
        if first:  # once per outage and query, not once per retry
            log.warning("%s; keeping the last good data and retrying", exc)

    # -- the readers -------------------------------------------------------------------

    def _reader(self) -> None:
        while (name := self._next()) is not None:
            try:
                index, entries = self.client.health(name)
            except DiscoveryError as exc:
                self._error("services", exc)
                with self.lock:
                    self.busy.discard(name)
                    self._queue({name}, urgent=False)  # again, after the changes (the back-off is shared)
                continue
            self._read(name, index, consul_model.slim(entries), consul_model.failing(entries))

    def _hot(self, interval: float) -> None:
        """Hold a blocking query on one of the services that changed last, in turn."""
        bucket, backoff, name = Bucket(interval), BACKOFF_START, None
        while (name := self._hot_pick(name)) is not None:
            wait = bucket.take()
            if wait:
                self.stopped.wait(wait)
                continue
            try:
                index, entries = self.client.health(name, self.index_of.get(name, 0))
            except DiscoveryError as exc:
                self._error("services", exc)
                with self.lock:
                    self.hot.drop(name)  # not watched while it fails: the feed queues its changes
                    self._queue({name} & self.wanted, urgent=False)
                name = None
                self.stopped.wait(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.retry_max)
                continue
            backoff = BACKOFF_START
            if not self.stopped.is_set():
                self._read(name, index, consul_model.slim(entries), consul_model.failing(entries))

    def _hot_pick(self, name: str | None) -> str | None:
        """The service a hot query holds next (waiting for one); None once stopped."""
        with self.lock:
            while not self.stopped.is_set():
                if self.book is not None:
                    name, dropped = self.hot.pick(name, self.recent, self.wanted)
                    if dropped is not None:  # it left the hot set: read it once more, nothing is lost
                        self._queue({dropped} & self.wanted, urgent=False)
                    if name is not None:
                        return name
                self.hot_wake.wait(0.5)
        return None

    def _next(self) -> str | None:
        with self.lock:
            while not self.stopped.is_set():
                if self.bumps:
                    self._resolve()
                timeout = 0.5
                if self.book is not None and self.catalog is not None:
                    if self.urgent:
                        name = next(iter(self.urgent))
                        del self.urgent[name]
                        self.busy.add(name)
                        return name
                    now = time.monotonic()
                    later = self.hunt or self.sweep
                    if later and now >= self.sweep_next:
                        name = next(iter(later))
                        del later[name]
                        self.busy.add(name)
                        self.sweep_next = max(now, self.sweep_next) + 1 / SWEEP_RATE
                        return name
                    if later:
                        timeout = self.sweep_next - now
                self.lock.wait(timeout)
        return None

    def _read(self, name: str, index: int, entries: list, why: dict[str, dict] | None = None) -> None:
        with self.lock:
            self._answered("services")
            self.busy.discard(name)
            self.read_at.pop(index, None)
            self.read_at[index] = None  # the last one last
            if len(self.read_at) > RECENT:
                del self.read_at[next(iter(self.read_at))]
            if index in self.hunted:
                self.hunted.discard(index)
                if not self.hunted:
                    self.hunt.clear()  # found what each unexplained write changed
            if name in self.again:
                self._queue({name}, urgent=self.again.pop(name))
            if name not in self.wanted:
                return  # no longer watched: a late answer
            if index < self.index_of.get(name, 0):
                return  # an older read that ended after a newer one (a hot query and a reader)
            self.index_of[name] = index
            first = name not in self.entries  # its first read: not a change (the hot set is changes)
            changed = first or self.entries[name] != entries
            self.entries[name] = entries
            if why:  # not in the entries: a new check output alone changes nothing to apply
                self.why[name] = why
            else:
                self.why.pop(name, None)
            self._place(name, entries)
            if changed and not first:
                self.recent.pop(name, None)
                self.recent[name] = None
                if len(self.recent) > RECENT:
                    del self.recent[next(iter(self.recent))]
                if name not in self.hot:
                    self.hot_wake.notify_all()  # the hot set moved
        if changed:
            self.on_change({name})

    # -- helpers (called with the lock held) ---------------------------------------------

    def _queue(self, names: Iterable[str], urgent: bool) -> None:
        """Queue ``names`` to be read.  Urgent ones wake one reader each, not all of
        them: each woken reader takes a name or, finding none, waits again, and a reader
        that finishes a read looks at the queue before it waits."""
        queued = 0
        for name in names:
            if name in self.busy:
                self.again[name] = urgent or self.again.get(name, False)
            elif urgent:
                queued += name not in self.urgent
                self.urgent[name] = None
                self.sweep.pop(name, None)
                self.hunt.pop(name, None)
            elif name not in self.urgent:
                self.sweep[name] = None
        if queued and urgent:
            self.lock.notify(queued)
        elif names and not urgent:
            self.lock.notify_all()  # the readers' timeouts follow the sweep's pace

    def _resolve(self) -> None:
        """Decide each pending catalog index: explained by the check feed, or not (a hunt)."""
        now, unexplained = time.monotonic(), []
        for index, deadline in list(self.bumps.items()):
            if self.marks.explains(index):
                del self.bumps[index]
            elif self.marks.index >= index or now >= deadline:
                del self.bumps[index]
                if index not in self.read_at:  # else a read already had this write: nothing to look for
                    unexplained.append(index)
        if unexplained:
            log.info("consul catalog index %d moved without a check change: looking for the service it changed",
                     max(unexplained))
            self._queue(self.checkless & self.wanted, urgent=True)
            # One raft index is one write, to one service: read the services (those that
            # changed last first: a deploy or a drain goes on where it began) until one
            # answers with each of these indexes.
            if not self.hunt:
                self.hunted.clear()  # a finished hunt's indexes not found (a service read before the write)
            self.hunted.update(unexplained)
            if self.hunt_order is None:  # kept until the services or those without checks change
                self.hunt_order = sorted(self.wanted - self.checkless)
            order = dict.fromkeys([n for n in reversed(self.recent) if n in self.wanted] + self.hunt_order)
            for name in [*self.urgent, *self.hot.held]:  # a hot service's own query answers its edits
                order.pop(name, None)
            self.hunt.update(order)  # those already in it keep their place
            self.lock.notify_all()

    def _place(self, name: str, entries: list) -> None:
        """Remember the nodes of a service's instances, and whether one has no checks."""
        nodes, checkless = consul_model.placement(entries)
        for node in self.nodes_of.get(name, set()) - nodes:
            self.on_node.get(node, set()).discard(name)
        for node in nodes:
            self.on_node.setdefault(node, set()).add(name)
        self.nodes_of[name] = nodes
        if checkless != (name in self.checkless):
            (self.checkless.add if checkless else self.checkless.discard)(name)
            self.hunt_order = None

    def _forget(self, name: str) -> None:
        self.entries.pop(name, None)
        self.why.pop(name, None)
        self.urgent.pop(name, None)
        self.sweep.pop(name, None)
        self.hunt.pop(name, None)
        self._place(name, [])
        self.nodes_of.pop(name, None)
        self.index_of.pop(name, None)

    def _answered(self, key: str) -> None:
        """An outage ends with an answer (for the readers, which fail and succeed mixed, with
        no error for ``QUIET`` seconds)."""
        since = self.failing.get(key)
        if since is not None and (key != "services" or time.monotonic() - since >= QUIET):
            del self.failing[key]
            log.info("consul answers %s again", key)
