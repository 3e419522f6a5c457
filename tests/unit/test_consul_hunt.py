"""The watcher's hunt for a catalog index that no check explains (an edit of address,
port, meta or weights alone): which indexes start one, in what order it reads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from lbctl.config import consul as consul_config
from lbctl.discovery import checks
from lbctl.discovery.watcher import ConsulWatcher

SERVICES = [f"svc-{i}" for i in range(6)]


def entries(name: str, port: int = 80) -> list:
    return [{"Node": {"Node": "n1"}, "Service": {"ID": f"{name}-1", "Service": name, "Port": port},
             "Checks": [{"CheckID": f"service:{name}-1", "ServiceID": f"{name}-1", "Status": "passing"}]}]


def watcher() -> ConsulWatcher:
    """A watcher past its start-up (both feeds answered, every service read at index 10)."""
    settings = consul_config.consul({"address": "127.0.0.1:8500", "services": SERVICES}, Path("."))
    w = ConsulWatcher(SimpleNamespace(settings=settings), lambda names: None, retry_max=1.0)
    w.book, w.marks.index = checks.Book(checks.Reading(b"[]")), 10
    w.catalog, w.catalog_index, w.wanted = {n: frozenset() for n in SERVICES}, 10, set(SERVICES)
    for name in SERVICES:
        w.busy.add(name)
        w._read(name, 10, entries(name))
    return w


def unexplained(w: ConsulWatcher, index: int) -> None:
    """The catalog answered ``index`` with the same services, and no check was written at it."""
    with w.lock:
        w.bumps[index] = 0.0
        w._resolve()


def test_an_unexplained_index_starts_a_hunt_that_reads_the_services_changed_last_first():
    w = watcher()
    w.busy.add("svc-3")
    w._read("svc-3", 11, entries("svc-3", 81))  # svc-3 changed last
    unexplained(w, 12)
    assert w.hunted == {12} and next(iter(w.hunt)) == "svc-3" and set(w.hunt) == set(SERVICES)
    w.busy.add("svc-5")
    w._read("svc-5", 12, entries("svc-5", 82))  # the service written at 12: the hunt is over
    assert not w.hunt and not w.hunted


def test_an_index_a_read_already_answered_with_starts_no_hunt():
    w = watcher()
    w.busy.add("svc-2")
    w._read("svc-2", 12, entries("svc-2", 90))  # read (for another reason) after its edit at 12 ...
    unexplained(w, 12)  # ... before the catalog's answer at 12 came: nothing left to look for
    assert not w.hunt and not w.hunted and not w.bumps
    unexplained(w, 13)  # an index no read has seen still starts one
    assert w.hunted == {13} and set(w.hunt) == set(SERVICES)
