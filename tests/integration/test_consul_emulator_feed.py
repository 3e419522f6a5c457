"""The two endpoints of a change feed over Consul, at scale: ``/v1/catalog/services``
(membership, index = the ``services`` table) and ``/v1/health/state/<state>`` (every
check, index = the ``checks`` table), with Consul's raft-index rules for
Create/ModifyIndex: one write, one index; a status change moves only its check.
"""

from __future__ import annotations

import threading

import consul
import pytest
import requests
from consul.exceptions import BadRequest

from lbctl_testkit.emulators.consul import ConsulEmulator


EMULATOR_SEED = 5


def by_id(checks: list[dict]) -> dict[str, dict]:
    return {(c["Node"], c["CheckID"]): c for c in checks}


def test_registration_with_checks_is_one_index_and_deregistration_removes_them_in_one(emu, cc):
    cc.agent.service.register("web", service_id="web-1", port=80, check=consul.Check.ttl("30s"),
                              extra_checks=[{"ttl": "30s", "status": "passing"}])
    idx, checks = cc.health.state("any")
    _, [row] = cc.catalog.service("web")
    mine = [c for c in checks if c["ServiceID"] == "web-1"]
    assert len(mine) == 2
    assert {(c["CreateIndex"], c["ModifyIndex"]) for c in mine} == {(row["CreateIndex"], row["CreateIndex"])}
    assert int(idx) == row["CreateIndex"] == emu.store.index
    services_idx, _ = cc.catalog.services()
    assert services_idx == idx

    assert cc.agent.service.deregister("web-1")
    idx2, checks2 = cc.health.state("any")
    services_idx2, services = cc.catalog.services()
    assert "web" not in services and not [c for c in checks2 if c["ServiceID"] == "web-1"]
    assert int(idx2) == int(services_idx2) == emu.store.index == int(idx) + 1


def test_a_status_change_moves_only_that_check_and_not_the_services_table(emu, cc):
    with emu.transaction():
        for i in range(3):
            emu.add_service("web", service_id=f"web-{i}", port=80)
    idx, before = cc.health.state("any")
    services_idx, _ = cc.catalog.services()
    emu.set_check("service:web-1", "critical", output="down")
    idx2, after = cc.health.state("any")
    assert int(idx2) == int(idx) + 1
    changed = {k for k, c in by_id(after).items() if c != by_id(before)[k]}
    assert changed == {("node-a", "service:web-1")}
    moved = by_id(after)[("node-a", "service:web-1")]
    assert moved["ModifyIndex"] == int(idx2) and moved["CreateIndex"] == by_id(before)[("node-a", "service:web-1")]["CreateIndex"]
    assert (moved["Status"], moved["Output"]) == ("critical", "down")
    assert cc.catalog.services()[0] == services_idx
    _, critical = cc.health.state("critical")
    assert [c["CheckID"] for c in critical] == ["service:web-1"]


def test_blocking_state_any_wakes_on_a_check_change(emu, cc):
    emu.add_service("web", service_id="web-1", port=80)
    idx, _ = cc.health.state("any")
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(r=cc.health.state("any", index=idx, wait="30s")), daemon=True)
    t.start()
    assert emu.wait_blocking(1)
    emu.set_check("service:web-1", "warning")
    t.join(10)
    assert not t.is_alive(), "the check change did not wake the query"
    new_idx, checks = box["r"]
    assert int(new_idx) > int(idx)
    assert by_id(checks)[("node-a", "service:web-1")]["Status"] == "warning"


def test_blocking_catalog_services_ignores_check_flips_and_wakes_on_membership(emu, cc):
    emu.add_service("web", service_id="web-1", port=80)
    idx, _ = cc.catalog.services()
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(r=cc.catalog.services(index=idx, wait="30s")), daemon=True)
    t.start()
    assert emu.wait_blocking(1)
    emu.set_check("service:web-1", "critical")  # checks table only: must not answer this
    flip_idx = emu.store.index
    emu.add_service("api", service_id="api-1", port=81)
    t.join(10)
    assert not t.is_alive(), "the new service did not wake the query"
    new_idx, services = box["r"]
    assert int(new_idx) == emu.store.index == flip_idx + 1 and "api" in services


def test_catalog_services_filter_on_tags_and_meta(emu, cc):
    with emu.transaction():
        emu.add_service("web", service_id="web-1", port=80, tags=["lb", "v1"], meta={"lb": "yes"})
        emu.add_service("web", service_id="web-2", port=80, tags=["v2"])
        emu.add_service("db", service_id="db-1", port=5432, tags=["primary"])
    _, lb = cc.catalog.services(filter_expr='"lb" in ServiceTags')
    assert lb == {"web": ["lb", "v1"]}, "only the matching instances' tags"
    _, meta = cc.catalog.services(filter_expr='ServiceMeta.lb == "yes" or ServiceName == "db"')
    assert sorted(meta) == ["db", "web"]
    _, none = cc.catalog.services(filter_expr='ServiceMeta.lb == "no"')
    assert none == {}
    with pytest.raises(consul.ConsulException, match="Failed to create boolean expression evaluator"):
        cc.catalog.services(filter_expr="ServiceTags ==")


def test_health_state_filter_node_meta_and_invalid_state(emu, cc):
    with emu.transaction():
        emu.add_node("node-b", "10.0.0.2", meta={"rack": "r1"})
        emu.add_service("web", node="node-b", service_id="web-1", port=80, status="warning")
        emu.add_service("db", service_id="db-1", port=5432, status="warning")
    _, rows = cc.health.state("warning", filter_expr='ServiceName == "web"')
    assert [c["ServiceID"] for c in rows] == ["web-1"]
    _, rows = cc.health.state("any", node_meta={"rack": "r1"})
    assert {c["CheckID"] for c in rows} == {"serfHealth", "service:web-1"}
    r = requests.get(f"{emu.url}/v1/health/state/bogus", timeout=5)
    assert (r.status_code, r.text) == (400, 'Invalid check state "bogus"')
    with pytest.raises(BadRequest):
        cc.health.state("any", index=1, wait="forever")


def test_hidden_nodes_leave_health_state_and_say_so_to_a_valid_token():
    with ConsulEmulator(acl_tokens={"t": "read"}) as emu:
        emu.add_node("node-b", "10.0.0.2")
        emu.add_service("web", node="node-b", service_id="web-1", port=80)
        emu.hide_nodes("node-b")
        r = requests.get(f"{emu.url}/v1/health/state/any", headers={"X-Consul-Token": "t"}, timeout=5)
        assert {c["Node"] for c in r.json()} == {"node-a"}
        assert r.headers["X-Consul-Results-Filtered-By-Acls"] == "true"
        r = requests.get(f"{emu.url}/v1/health/state/critical", headers={"X-Consul-Token": "t"}, timeout=5)
        assert r.json() == [] and "X-Consul-Results-Filtered-By-Acls" not in r.headers


def test_reset_index_is_seen_in_state_any_records(emu, cc):
    emu.add_service("web", service_id="web-1", port=80)
    emu.set_check("service:web-1", "warning")
    emu.reset_index(1)
    idx, checks = cc.health.state("any")
    assert idx == "1" and {c["ModifyIndex"] for c in checks} == {1}


def test_ten_thousand_services_feed(emu, cc):
    """10,000 services × 5 instances: a flip shows as exactly one changed check."""
    with emu.transaction():
        for i in range(10_000):
            for k in range(5):
                emu.add_service(f"svc-{i}", service_id=f"svc-{i}-{k}", port=8080,
                                tags=["lb"] if i % 2 else [], meta={"lb": "yes"} if i % 2 else None)
    idx, before = cc.health.state("any")
    assert len(before) == 50_000 + 1  # + the agent's serfHealth
    _, lb = cc.catalog.services(filter_expr='"lb" in ServiceTags')
    assert len(lb) == 5_000
    emu.set_check("service:svc-4321-3", "critical")
    idx2, after = cc.health.state("any", index=idx, wait="5s")
    old = {(c["Node"], c["CheckID"]): c["ModifyIndex"] for c in before}
    changed = [c["CheckID"] for c in after if old.get((c["Node"], c["CheckID"])) != c["ModifyIndex"]]
    assert changed == ["service:svc-4321-3"] and int(idx2) == int(idx) + 1
    emu.remove_service("svc-4321-3")
    idx3, after = cc.health.state("any", index=idx2, wait="5s")
    assert len(after) == 50_000 and int(idx3) == int(idx2) + 1
