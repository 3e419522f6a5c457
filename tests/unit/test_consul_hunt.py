"""The watcher's hunt for a catalog index that no check explains (an edit of address,
port, meta or weights alone): which indexes start one, in what order it reads; and the
hot set, the services changed last, whose own blocking queries answer their changes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from lbctl.config import consul as consul_config
from lbctl.discovery import checks, hotset
from lbctl.discovery.hotset import hot_slots
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


def hottest(w: ConsulWatcher) -> list[str]:
    return w.hot.hottest(w.recent, w.wanted)


def change(w: ConsulWatcher, name: str, index: int, port: int) -> None:
    w.busy.add(name)
    w._read(name, index, entries(name, port))


def test_first_reads_are_not_changes_so_the_hot_set_starts_empty():
    w = watcher()  # every service read once
    assert hottest(w) == []
    change(w, "svc-1", 11, 81)
    change(w, "svc-4", 12, 84)
    assert hottest(w) == ["svc-4", "svc-1"]  # changed last first


def test_the_hot_set_is_the_services_changed_last_and_at_most_hot(monkeypatch):
    monkeypatch.setattr(hotset, "HOT", 2)
    w = watcher()
    for i, name in enumerate(["svc-0", "svc-1", "svc-2"]):
        change(w, name, 11 + i, 90 + i)
    assert hottest(w) == ["svc-2", "svc-1"]
    assert w._hot_pick(None) == "svc-2" and w._hot_pick(None) == "svc-1"  # two queries, one each
    assert w.hot.held == {"svc-2", "svc-1"}
    assert w._hot_pick("svc-1") == "svc-1"  # still hot: the same query goes on


def test_a_service_that_leaves_the_hot_set_is_read_once_more(monkeypatch):
    monkeypatch.setattr(hotset, "HOT", 1)
    w = watcher()
    change(w, "svc-0", 11, 90)
    assert w._hot_pick(None) == "svc-0"
    change(w, "svc-5", 12, 95)  # now svc-5 is the hottest
    assert w._hot_pick("svc-0") == "svc-5"
    assert w.hot.held == {"svc-5"} and "svc-0" in w.sweep  # a change svc-0 had meanwhile is not lost


def test_a_hot_service_is_left_out_of_the_hunt():
    w = watcher()
    change(w, "svc-3", 11, 81)
    assert w._hot_pick(None) == "svc-3"
    unexplained(w, 12)
    assert "svc-3" not in w.hunt and set(w.hunt) == set(SERVICES) - {"svc-3"}


def test_an_older_answer_that_ends_after_a_newer_one_is_ignored():
    w = watcher()
    change(w, "svc-2", 14, 82)  # a hot query's answer ...
    change(w, "svc-2", 12, 99)  # ... and a reader's, sent before it, ending after it
    assert w.entries["svc-2"] == entries("svc-2", 82) and w.index_of["svc-2"] == 14


def test_hot_queries_take_half_the_connections_the_feeds_leave_at_most_hot():
    assert [hot_slots(n) for n in (3, 4, 16, 190)] == [0, 1, 7, hotset.HOT]
