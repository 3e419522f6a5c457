"""Store core: the raft-like index, per-resource watches, blocking, and timers.

Every write runs inside ``_txn()``: the first real change in it takes the next global
index, and only the watch keys it touched are notified when it ends.  Watch keys are
``("svc", name)`` for one service's health, and table names (``"services"``,
``"nodes"``, ``"checks"``, ``"kv"``, ``"sessions"``).  Each key has its own
``threading.Condition`` sharing the store lock, so a health flip on one service wakes
only that service's waiters: the cost of a change is proportional to what changed.

Time for TTLs, session expiry and lock-delays comes from ``now()`` (an injectable
clock plus an ``advance()`` offset); a single timer thread sleeps on a condition until
the earliest deadline.  Blocking waits use real time.  No HTTP here.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator


class ConsulError(Exception):
    """An API error: HTTP *status* and the plain-text *message* Consul would send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Aborted(Exception):
    """A blocking query was cut (server outage); the caller drops the connection."""


TABLES = ("nodes", "services", "checks", "kvs", "tombstones", "sessions")


class StoreCore:
    """Lock, indexes, watches, timers.  Mixins add the catalog, KV and sessions."""

    def __init__(self, *, clock: Callable[[], float] | None = None, seed: int | None = None) -> None:
        self._lock = threading.RLock()
        self._clock = clock or time.monotonic
        self._offset = 0.0
        self._rng = random.Random(seed)
        self._index = 0
        self._tables: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._conds: dict[Hashable, list[Any]] = {}  # key -> [Condition, waiters]
        self._epoch = 0  # bumped to make every blocked query return now
        self._waiting = 0
        self._waiting_cond = threading.Condition(self._lock)
        self._txn_depth = 0
        self._txn_index: int | None = None
        self._pending: set[Hashable] = set()
        self._timers: list[tuple[float, int, str, Any]] = []
        self._timer_seq = itertools.count()
        self._timer_cond = threading.Condition(self._lock)
        self._timer_handlers: dict[str, Callable[[Any, float], None]] = {}
        self._timer_thread: threading.Thread | None = None
        self._timer_stop = False

    # ------------------------------------------------------------ ids / time
    def new_uuid(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def now(self) -> float:
        """Store time in seconds (monotonic clock plus ``advance()`` offset)."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move store time forward and fire every timer that became due."""
        with self._lock:
            self._offset += seconds
            self._run_timers()
            self._timer_cond.notify_all()

    def random(self) -> float:
        with self._lock:
            return self._rng.random()

    # ------------------------------------------------------------ indexes
    @property
    def index(self) -> int:
        return self._index

    def table_index(self, *names: str) -> int:
        return max(self._tables[n] for n in names)

    @contextmanager
    def _txn(self) -> Iterator[None]:
        """Group writes: one index for all changes, one notification at the end."""
        with self._lock:
            self._txn_depth += 1
            try:
                yield
            finally:
                self._txn_depth -= 1
                if self._txn_depth == 0:
                    self._txn_index = None
                    pending, self._pending = self._pending, set()
                    for key in pending:
                        entry = self._conds.get(key)
                        if entry is not None:
                            entry[0].notify_all()

    def _widx(self) -> int:
        """The index of the current write transaction (allocated on first use)."""
        assert self._txn_depth > 0, "write outside _txn()"
        if self._txn_index is None:
            self._index += 1
            self._txn_index = self._index
        return self._txn_index

    def _touch_table(self, name: str, watch: Hashable | None = None) -> int:
        idx = self._widx()
        self._tables[name] = idx
        self._pending.add(watch or name)
        if name in ("nodes", "services", "checks"):
            self._pending.add("catalog")
        return idx

    def _touch_key(self, key: Hashable) -> None:
        self._pending.add(key)

    def reset_indexes(self, to: int = 1) -> None:
        """Simulate a snapshot restore: every index drops to at most *to*, data stays."""
        with self._txn():
            self._index = to
            for name in self._tables:
                self._tables[name] = min(self._tables[name], to)
            self._lower_indexes(to)
            self._epoch += 1
            self._notify_all()

    def _lower_indexes(self, to: int) -> None:  # overridden by mixins
        pass

    def _notify_all(self) -> None:
        for entry in self._conds.values():
            entry[0].notify_all()

    def wake_all(self, *, abandon: bool = True) -> None:
        """Wake every blocked query; with *abandon* they return now (same index)."""
        with self._lock:
            if abandon:
                self._epoch += 1
            self._notify_all()

    @property
    def waiting(self) -> int:
        """How many blocking queries are parked right now."""
        return self._waiting

    def wait_waiting(self, n: int, timeout: float) -> bool:
        """Wait (on a condition, up to *timeout* s) until at least *n* queries are parked."""
        with self._lock:
            return self._waiting_cond.wait_for(lambda: self._waiting >= n, timeout)

    # ------------------------------------------------------------ blocking
    def block(self, key: Hashable, min_index: int, timeout: float,
              index_fn: Callable[[], int], build_fn: Callable[[], Any],
              abort: Callable[[], bool] | None = None) -> Any:
        """Consul's blocking query: wait until ``index_fn() > min_index`` or *timeout*.

        ``min_index == 0`` runs once.  Returns ``build_fn()`` evaluated under the lock.
        Raises ``Aborted`` when *abort* says the server went away.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            epoch = self._epoch
            while True:
                if abort is not None and abort():
                    raise Aborted()
                if not min_index or index_fn() > min_index or self._epoch != epoch:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                entry = self._conds.get(key)
                if entry is None:
                    entry = self._conds[key] = [threading.Condition(self._lock), 0]
                entry[1] += 1
                self._waiting += 1
                self._waiting_cond.notify_all()
                try:
                    entry[0].wait(remaining)
                finally:
                    entry[1] -= 1
                    self._waiting -= 1
                    if entry[1] == 0 and self._conds.get(key) is entry:
                        del self._conds[key]
            return build_fn()

    # ------------------------------------------------------------ timers
    def _schedule(self, deadline: float, kind: str, ident: Any) -> None:
        heapq.heappush(self._timers, (deadline, next(self._timer_seq), kind, ident))
        if self._timers[0][0] == deadline:
            self._timer_cond.notify_all()
        if len(self._timers) > 4096 and len(self._timers) > 4 * self._live_timer_count():
            self._timers = [t for t in self._timers if self._timer_live(t[2], t[3], t[0])]
            heapq.heapify(self._timers)

    def _timer_live(self, kind: str, ident: Any, deadline: float) -> bool:  # mixins override
        return True

    def _live_timer_count(self) -> int:
        return sum(1 for t in self._timers if self._timer_live(t[2], t[3], t[0]))

    def _run_timers(self) -> None:
        now = self.now()
        while self._timers and self._timers[0][0] <= now:
            deadline, _, kind, ident = heapq.heappop(self._timers)
            handler = self._timer_handlers.get(kind)
            if handler is not None:
                handler(ident, deadline)

    def _timer_loop(self) -> None:
        with self._lock:
            while not self._timer_stop:
                self._run_timers()
                if self._timers:
                    delay = max(self._timers[0][0] - self.now(), 0.001)
                    self._timer_cond.wait(min(delay, 3600.0))
                else:
                    self._timer_cond.wait()

    def start_timers(self) -> None:
        with self._lock:
            if self._timer_thread is not None:
                return
            self._timer_stop = False
            self._timer_thread = threading.Thread(target=self._timer_loop, name="consul-emu-timers",
                                                  daemon=True)
            self._timer_thread.start()

    def stop_timers(self) -> None:
        with self._lock:
            thread, self._timer_thread = self._timer_thread, None
            self._timer_stop = True
            self._timer_cond.notify_all()
        if thread is not None:
            thread.join(timeout=5)
