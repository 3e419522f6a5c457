"""The emulator's in-memory Store: index rules and timers, without HTTP."""

from __future__ import annotations

import pytest

from lbctl_testkit.emulators.consul import ConsulError, Store


@pytest.fixture
def store():
    return Store(seed=3)


def health(store: Store, name: str):
    with store._lock:
        return store.read_health_service(name)[1]()


def test_one_write_takes_one_index_and_no_op_writes_take_none(store):
    before = store.index
    with store.transaction():
        store.add_node("node-b", "10.0.0.2")
        store.add_service("web", node="node-b", service_id="w1", tags=["a"])
    assert store.index == before + 1
    store.add_service("web", node="node-b", service_id="w1", tags=["a"])
    assert store.index == before + 1


def test_check_flip_bumps_its_service_only(store):
    store.add_node("node-b", "10.0.0.2")
    store.add_service("web", node="node-b", service_id="w1")
    store.add_node("node-c", "10.0.0.3")
    store.add_service("db", node="node-c", service_id="d1")
    web_idx, db_idx = health(store, "web")[0], health(store, "db")[0]
    services_table = store.table_index("services")
    store.set_check("service:w1", "warning")
    assert health(store, "web")[0] > web_idx and health(store, "db")[0] == db_idx
    assert store.table_index("services") == services_table


def test_extinction_index_for_a_removed_service(store):
    store.add_service("tmp", service_id="t1")
    idx, _ = health(store, "tmp")
    store.remove_service("t1")
    gone, entries = health(store, "tmp")
    assert entries == [] and gone > idx
    assert health(store, "never-existed")[0] >= 1


def test_reset_lowers_every_index_and_keeps_data(store):
    for i in range(10):
        store.add_service("web", service_id=f"w{i}")
    high = store.index
    store.reset_indexes(2)
    idx, entries = health(store, "web")
    assert idx <= 2 < high and len(entries) == 10
    assert all(e["Service"]["ModifyIndex"] <= 2 for e in entries)
    store.set_check("service:w3", "critical")
    assert health(store, "web")[0] == 3


def test_ttl_timer_and_deferred_output(store):
    store.agent_register_service({"Name": "web", "Check": {"TTL": "10s"}})
    store.agent_update_ttl("service:web", "passing", "one")
    idx = health(store, "web")[0]
    store.agent_update_ttl("service:web", "passing", "two")  # output only: synced later
    assert health(store, "web")[0] == idx
    store.advance(9)
    store.agent_update_ttl("service:web", "passing", "two")
    store.advance(9)
    assert health(store, "web")[1][0]["Checks"][1]["Status"] == "passing"
    store.advance(300)
    chk = health(store, "web")[1][0]["Checks"][1]
    assert chk["Status"] == "critical" and chk["Output"].startswith("TTL expired")


def test_deferred_output_syncs_after_the_interval():
    store = Store(check_update_interval=60)
    store.agent_register_service({"Name": "web", "Check": {"TTL": "1h", "Status": "passing"}})
    store.agent_update_ttl("service:web", "passing", "new output")
    assert health(store, "web")[1][0]["Checks"][1]["Output"] == ""
    store.advance(61)
    assert health(store, "web")[1][0]["Checks"][1]["Output"] == "new output"


def test_errors_carry_status_and_message(store):
    with pytest.raises(ConsulError) as exc:
        store.agent_update_ttl("nope", "passing", "")
    assert exc.value.status == 404
    with pytest.raises(ConsulError) as exc:
        store.agent_register_service({"Port": 1})
    assert (exc.value.status, exc.value.message) == (400, "Missing service name")
    with pytest.raises(KeyError):
        store.add_service("web", node="ghost")


def test_node_removal_invalidates_its_sessions_and_releases_locks(store):
    store.add_node("node-b", "10.0.0.2")
    sid = store.session_create({"Node": "node-b", "LockDelay": "0s"})
    assert store.kv_put("lock", b"x", acquire=sid)
    store.remove_node("node-b")
    assert sid not in store._sessions
    assert "Session" not in store._kv["lock"]
