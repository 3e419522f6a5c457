"""Keeps every watched service's health entries current, from one ``Watch`` per
service and one on the catalog when services are chosen by tag or filter."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from lbctl.discovery.consul import Client, Watch, selected
from lbctl.errors import DiscoveryError

log = logging.getLogger("lbctl.consul")
CATALOG = "catalog"


class ConsulWatcher:
    def __init__(self, client: Client, on_change: Callable[[set[str]], None], retry_max: float,
                 on_error: Callable[[str], None] = lambda key: None) -> None:
        self.client = client
        self.count_error = on_error
        self.settings = client.settings
        self.on_change = on_change
        self.retry_max = retry_max
        self.lock = threading.Lock()
        self.entries: dict[str, list] = {}
        self.failing: dict[str, str] = {}
        self.watches: dict[str, Watch] = {}
        self.catalog_seen = not (self.settings.tag or self.settings.filter)
        self.last_answer = 0.0  # time.monotonic() of the last good answer

    def start(self) -> None:
        if not self.catalog_seen:
            self._spawn(CATALOG, self.client.services, self._catalog)
        with self.lock:
            self._watch(set(self.settings.services))

    def stop(self) -> None:
        for w in list(self.watches.values()):
            w.cancel()
        self.client.close()

    def ready(self) -> bool:
        """Every watched service (and the catalog, if used) has answered at least once."""
        with self.lock:
            return self.catalog_seen and all(name in self.entries for name in self.watches if name != CATALOG)

    def snapshot(self) -> dict[str, list]:
        with self.lock:
            return {name: self.entries[name] for name in self.watches if name in self.entries}

    def age(self) -> float | None:
        """Seconds since Consul last answered (None before the first answer)."""
        return time.monotonic() - self.last_answer if self.last_answer else None

    # -- callbacks from the watch threads --------------------------------------------

    def _catalog(self, _key: str, catalog: Any) -> None:
        with self.lock:
            self.catalog_seen = True
            changed = self._watch(selected(self.settings, catalog or {}))
        if changed:
            self.on_change(changed)

    def _service(self, name: str, entries: Any) -> None:
        with self.lock:
            if name not in self.watches:
                return  # no longer watched: a late answer
            self.entries[name] = entries
        self.on_change({name})

    def _error(self, key: str, exc: DiscoveryError) -> None:
        self.count_error(key)
        with self.lock:
            first = key not in self.failing
            self.failing[key] = str(exc)
        if first:  # once per outage and query, not once per retry
            log.warning("%s; keeping the last good data and retrying", exc)

    # -- helpers (called with the lock held) --------------------------------------------

    def _answered(self, key: str) -> None:
        self.last_answer = time.monotonic()
        if self.failing.pop(key, None) is not None:
            log.info("consul answers %s again", key)

    def _watch(self, wanted: set[str]) -> set[str]:
        current = {k for k in self.watches if k != CATALOG}
        for name in current - wanted:
            self.watches.pop(name).cancel()
            self.entries.pop(name, None)
        for name in sorted(wanted - current):
            self._spawn(name, lambda index, n=name: self.client.health(n, index), self._service)
        return (current - wanted) | (wanted - current)

    def _spawn(self, key: str, fetch, on_change) -> None:
        def answered(index: int):  # every good answer, changed or not, keeps the data fresh
            result = fetch(index)
            with self.lock:
                self._answered(key)
            return result

        w = Watch(key, answered, on_change, self._error, self.settings.min_query_interval_ms / 1000, self.retry_max)
        self.watches[key] = w
        w.start()
