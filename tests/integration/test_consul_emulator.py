"""The Consul emulator, driven through the real py-consul client over loopback HTTP.

Agent registration, TTL checks, maintenance, catalog/health reads and filters,
blocking queries, fault switches and ACLs.  KV and sessions: test_consul_emulator_kv.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import consul
import pytest
import requests
from consul.exceptions import ACLPermissionDenied, BadRequest, ClientError

from lbctl_testkit.emulators.consul import ConsulEmulator

SVC_MAINT_REASON = ("Maintenance mode is enabled for this service, but no reason was provided. "
                    "This is a default message.")
NODE_MAINT_REASON = ("Maintenance mode is enabled for this node, but no reason was provided. "
                     "This is a default message.")




# A blocking query's wait, far past every deadline a test gives it to answer: an answer that
# comes in time was woken, never timed out (a timeout answer would carry the change too).
LONG_WAIT = "60s"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Event, dict]:
    """Run *fn* in a daemon thread; the event fires when it returns or raises."""
    done, box = threading.Event(), {}

    def run() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, box


def checks_by_id(entry: dict) -> dict[str, dict]:
    return {c["CheckID"]: c for c in entry["Checks"]}


def register_web(cc, sid="web-1", **kw) -> None:
    kw.setdefault("check", consul.Check.ttl("15s"))
    assert cc.agent.service.register("web", service_id=sid, port=8080, **kw) is True


# ---------------------------------------------------------------- agent registration
def test_register_gives_the_spec_health_shape_and_headers(emu, cc):
    register_web(cc, address="10.0.0.5", tags=["v1"])
    idx, entries = cc.health.service("web")
    assert int(idx) >= 1 and len(entries) == 1
    e = entries[0]
    assert e["Node"]["Node"] == "node-a" and e["Node"]["Datacenter"] == "dc1"
    assert {"ID", "Address", "TaggedAddresses", "Meta", "CreateIndex", "ModifyIndex"} <= set(e["Node"])
    svc = e["Service"]
    assert (svc["ID"], svc["Service"], svc["Tags"], svc["Address"], svc["Port"]) == ("web-1", "web", ["v1"], "10.0.0.5", 8080)
    assert svc["Meta"] is None and svc["Weights"] == {"Passing": 1, "Warning": 1}
    assert svc["Proxy"] == {"Mode": "", "MeshGateway": {}, "Expose": {}} and svc["PeerName"] == ""
    checks = checks_by_id(e)
    assert checks["serfHealth"]["Status"] == "passing" and checks["serfHealth"]["ServiceTags"] == []
    own = checks["service:web-1"]
    assert (own["Name"], own["Status"], own["Type"], own["ServiceName"]) == ("Service 'web' check", "critical", "ttl", "web")
    r = requests.get(f"{emu.url}/v1/health/service/web", timeout=5)
    assert r.headers["X-Consul-Index"] == idx
    assert r.headers["X-Consul-Knownleader"] == "true" and r.headers["X-Consul-Lastcontact"] == "0"
    assert r.headers["X-Consul-Effective-Consistency"] == "leader"
    assert r.headers["X-Consul-Default-Acl-Policy"] == "allow"
    assert r.headers["X-Consul-Query-Backend"] == "blocking-query"
    assert "X-Consul-Index" not in requests.get(f"{emu.url}/v1/agent/services", timeout=5).headers


def test_register_defaults_tags_meta_weights_and_several_checks(cc):
    assert cc.agent.service.register("api", check=consul.Check.ttl("10s"),
                                     extra_checks=[{"ttl": "10s", "status": "passing"}])
    _, [e] = cc.health.service("api")
    assert e["Service"]["ID"] == "api" and e["Service"]["Tags"] == [] and e["Service"]["Address"] == ""
    checks = checks_by_id(e)
    assert checks["service:api:1"]["Status"] == "critical"
    assert checks["service:api:2"]["Status"] == "passing"
    cc.agent.service.register("api2", meta={"env": "prod"}, weights={"Passing": 10, "Warning": 1},
                              check=consul.Check.ttl("10s"))
    svcs = cc.agent.services()
    assert svcs["api2"]["Meta"] == {"env": "prod"} and svcs["api2"]["Weights"] == {"Passing": 10, "Warning": 1}


def test_missing_name_is_400(emu):
    r = requests.put(f"{emu.url}/v1/agent/service/register", json={"port": 1}, timeout=5)
    assert (r.status_code, r.text) == (400, "Missing service name")


def test_deregister_is_idempotent_and_removes_checks(cc):
    register_web(cc)
    assert cc.agent.service.deregister("web-1") is True
    assert cc.agent.service.deregister("web-1") is True
    assert cc.health.service("web")[1] == []
    assert "web" not in cc.catalog.services()[1]
    assert cc.agent.check.ttl_pass("service:web-1") is False


def test_replace_existing_checks_drops_unlisted_ones(cc):
    register_web(cc, check=consul.Check.ttl("10s"), extra_checks=[{"ttl": "10s"}])
    assert set(checks_by_id(cc.health.service("web")[1][0])) >= {"service:web-1:1", "service:web-1:2"}
    register_web(cc, check={"ttl": "10s", "CheckID": "only"}, replace_existing_checks=True)
    ids = set(checks_by_id(cc.health.service("web")[1][0]))
    assert ids == {"serfHealth", "only"}


def test_reregistration_keeps_check_status_and_identical_one_bumps_nothing(cc):
    register_web(cc, tags=["v1"])
    cc.agent.check.ttl_pass("service:web-1", "fine")
    cat_idx, _ = cc.catalog.services()
    health_idx, _ = cc.health.service("web")
    register_web(cc, tags=["v1"])
    assert cc.catalog.services()[0] == cat_idx
    idx, [e] = cc.health.service("web")
    assert idx == health_idx and checks_by_id(e)["service:web-1"]["Status"] == "passing"
    register_web(cc, tags=["v2"])
    assert int(cc.catalog.services()[0]) > int(cat_idx)
    assert cc.catalog.services()[1]["web"] == ["v2"]


# ---------------------------------------------------------------- TTL checks
def test_ttl_pass_warn_fail_set_status_and_output(cc):
    register_web(cc)
    for call, status in ((cc.agent.check.ttl_pass, "passing"), (cc.agent.check.ttl_warn, "warning"),
                         (cc.agent.check.ttl_fail, "critical")):
        assert call("service:web-1", f"note-{status}") is True
        chk = checks_by_id(cc.health.service("web")[1][0])["service:web-1"]
        assert (chk["Status"], chk["Output"]) == (status, f"note-{status}")


def test_ttl_unknown_check_is_404_and_non_ttl_check_is_500(emu, cc):
    assert cc.agent.check.ttl_pass("nope") is False
    r = requests.put(f"{emu.url}/v1/agent/check/pass/nope", timeout=5)
    assert r.status_code == 404
    assert r.text == 'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.'
    assert cc.agent.check.register("web http", check=consul.Check.http("http://127.0.0.1:1/", "10s"),
                                   check_id="http1")
    with pytest.raises(consul.ConsulException, match='CheckID "http1" does not have associated TTL'):
        cc.agent.check.ttl_pass("http1")


def test_ttl_expiry_with_the_controllable_clock(emu, cc):
    register_web(cc, check=consul.Check.ttl("10s"))
    cc.agent.check.ttl_pass("service:web-1", "ok")
    emu.advance(9)
    assert checks_by_id(cc.health.service("web")[1][0])["service:web-1"]["Status"] == "passing"
    emu.advance(2)
    chk = checks_by_id(cc.health.service("web")[1][0])["service:web-1"]
    assert chk["Status"] == "critical"
    assert chk["Output"] == "TTL expired (last output before timeout follows): ok"


def test_ttl_expiry_in_real_time_wakes_a_blocking_query(cc):
    register_web(cc, check=consul.Check.ttl("300ms"))
    cc.agent.check.ttl_pass("service:web-1")
    idx, _ = cc.health.service("web", passing=True)
    done, box = in_thread(lambda: cc.health.service("web", index=idx, wait="10s", passing=True))
    assert done.wait(8), "TTL expiry did not wake the blocking query"
    new_idx, entries = box["result"]
    assert int(new_idx) > int(idx) and entries == []


def test_check_register_for_a_service_and_deregister(cc):
    register_web(cc)
    assert cc.agent.check.register("web ttl", check=consul.Check.ttl("15s"), check_id="extra",
                                   service_id="web-1")
    chk = checks_by_id(cc.health.service("web")[1][0])["extra"]
    assert (chk["ServiceID"], chk["Status"]) == ("web-1", "critical")
    assert "extra" in cc.agent.checks()
    assert cc.agent.check.deregister("extra") is True
    assert "extra" not in checks_by_id(cc.health.service("web")[1][0])


# ---------------------------------------------------------------- maintenance
def test_service_maintenance(emu, cc):
    register_web(cc, check={"ttl": "15s", "status": "passing"})
    assert len(cc.health.service("web", passing=True)[1]) == 1
    assert cc.agent.service.maintenance("web-1", True) is True
    assert cc.agent.service.maintenance("web-1", True) is True  # idempotent
    chk = checks_by_id(cc.health.service("web")[1][0])["_service_maintenance:web-1"]
    assert (chk["Name"], chk["Status"], chk["Notes"], chk["ServiceID"]) == \
        ("Service Maintenance Mode", "critical", SVC_MAINT_REASON, "web-1")
    assert cc.health.service("web", passing=True)[1] == []
    assert "_service_maintenance:web-1" in {c["CheckID"] for c in cc.health.state("critical")[1]}
    assert cc.agent.service.maintenance("web-1", False) is True
    assert len(cc.health.service("web", passing=True)[1]) == 1
    cc.agent.service.maintenance("web-1", True, "deploy")
    assert checks_by_id(cc.health.service("web")[1][0])["_service_maintenance:web-1"]["Notes"] == "deploy"
    assert cc.agent.service.maintenance("ghost", True) is False
    r = requests.put(f"{emu.url}/v1/agent/service/maintenance/ghost?enable=true", timeout=5)
    assert (r.status_code, r.text) == (404, 'No service registered with ID "ghost"')
    r = requests.put(f"{emu.url}/v1/agent/service/maintenance/web-1", timeout=5)
    assert (r.status_code, r.text) == (400, "Missing value for enable")
    r = requests.put(f"{emu.url}/v1/agent/service/maintenance/web-1?enable=maybe", timeout=5)
    assert (r.status_code, r.text) == (400, 'Invalid value for enable: "maybe"')


def test_node_maintenance_takes_every_service_of_the_node_out(cc):
    register_web(cc, check={"ttl": "15s", "status": "passing"})
    register_web(cc, "web-2", check={"ttl": "15s", "status": "passing"})
    assert cc.agent.maintenance(True) is True
    _, entries = cc.health.service("web")
    for e in entries:
        chk = checks_by_id(e)["_node_maintenance"]
        assert (chk["Name"], chk["Notes"], chk["ServiceID"]) == ("Node Maintenance Mode", NODE_MAINT_REASON, "")
    assert cc.health.service("web", passing=True)[1] == []
    assert cc.agent.maintenance(False) is True
    assert len(cc.health.service("web", passing=True)[1]) == 2


# ---------------------------------------------------------------- several nodes, catalog
def test_catalog_register_on_other_nodes(emu, cc):
    assert cc.catalog.register("node-b", "10.0.1.7",
                               service={"Service": "web", "ID": "web-b", "Port": 8080, "Tags": ["v1"]},
                               check={"CheckID": "service:web-b", "Name": "web", "Status": "passing",
                                      "ServiceID": "web-b"})
    _, entries = cc.health.service("web", passing=True)
    assert [(e["Node"]["Node"], e["Node"]["Address"], e["Service"]["Address"]) for e in entries] == \
        [("node-b", "10.0.1.7", "")]
    _, rows = cc.catalog.service("web")
    assert rows[0]["Address"] == "10.0.1.7" and rows[0]["ServiceAddress"] == "" and rows[0]["ServicePort"] == 8080
    assert {n["Node"] for n in cc.catalog.nodes()[1]} == {"node-a", "node-b"}
    # py-consul sends register(node_meta=...) as a query parameter, which Consul ignores:
    # node metadata has to travel in the body.
    r = requests.put(f"{emu.url}/v1/catalog/register", timeout=5,
                     json={"Node": "node-b", "Address": "10.0.1.7", "NodeMeta": {"rack": "r1"}})
    assert r.json() is True
    assert [n["Node"] for n in cc.catalog.nodes(node_meta={"rack": "r1"})[1]] == ["node-b"]
    assert cc.catalog.deregister("node-b", service_id="web-b")
    assert cc.health.service("web")[1] == []
    assert cc.catalog.deregister("node-b")
    assert {n["Node"] for n in cc.catalog.nodes()[1]} == {"node-a"}


def test_catalog_index_ignores_check_flips_but_health_index_moves(cc):
    register_web(cc)
    cat_idx, _ = cc.catalog.services()
    h_idx, _ = cc.health.service("web")
    cc.agent.check.ttl_pass("service:web-1")
    assert cc.catalog.services()[0] == cat_idx
    assert int(cc.health.service("web")[0]) > int(h_idx)


def test_per_service_index_is_isolated(emu, cc):
    emu.add_node("node-b", "10.0.1.7")
    emu.add_service("web", node="node-b", service_id="web-1")
    emu.add_service("db", node="node-b", service_id="db-1")
    db_idx, _ = cc.health.service("db")
    emu.set_check("service:web-1", "critical", node="node-b")
    assert cc.health.service("db")[0] == db_idx
    emu.set_node_health("node-b", "critical")  # a node check touches every service of the node
    assert int(cc.health.service("db")[0]) > int(db_idx)
    assert cc.health.service("db", passing=True)[1] == []


# ---------------------------------------------------------------- health filters
@pytest.fixture
def fleet(emu):
    with emu.transaction():
        emu.add_node("node-b", "10.0.1.7", meta={"rack": "r1"})
        emu.add_node("node-c", "10.0.1.8", meta={"rack": "r2"})
        emu.add_service("web", node="node-b", service_id="web-1", port=8080, tags=["v1"])
        emu.add_service("web", node="node-c", service_id="web-2", address="10.0.1.70", port=8080,
                        tags=["v1", "Canary"], meta={"env": "prod"}, weights={"Passing": 10, "Warning": 1})
        emu.add_service("web", node="node-c", service_id="web-3", port=9090, tags=["v2"],
                        meta={"env": "prod"}, status="warning")
    return emu


def ids(result) -> list[str]:
    return sorted(e["Service"]["ID"] for e in result[1])


@pytest.mark.parametrize("expr, expected", [
    ('"canary" not in Service.Tags and Service.Meta.env == "prod"', ["web-2", "web-3"]),
    ('"Canary" in Service.Tags', ["web-2"]),
    ('Service.Meta["env"] == `prod` and Service.Port == 9090', ["web-3"]),
    ("Service.Meta.env is empty", ["web-1"]),
    ("Service.Meta is not empty", ["web-2", "web-3"]),
    ('Node.Node == "node-b" or (Service.Port != 8080)', ["web-1", "web-3"]),
    ('Node.Meta.rack matches "^r[2-9]$"', ["web-2", "web-3"]),
    ('Checks.Status == "warning"', ["web-3"]),
    ('not (Checks.Status == "warning")', ["web-1", "web-2"]),
    ('Service.Address contains "10.0"', ["web-2"]),
    ("Service.Weights.Passing == 10", ["web-2"]),
])
def test_health_filter_expressions(fleet, cc, expr, expected):
    assert ids(cc.health.service("web", filter_expr=expr)) == expected


def test_health_tags_passing_node_meta(fleet, cc):
    assert ids(cc.health.service("web", tag=["V1", "canary"])) == ["web-2"]
    assert ids(cc.health.service("web", tag="v1")) == ["web-1", "web-2"]
    assert ids(cc.health.service("web", passing=True)) == ["web-1", "web-2"]
    assert ids(cc.health.service("web", node_meta={"rack": "r2"})) == ["web-2", "web-3"]
    assert ids(cc.health.service("web", dc="dc1")) == ["web-1", "web-2", "web-3"]


@pytest.mark.parametrize("expr", ['Service.Port ==', 'Service.Nope == "x"', '"a" in', "Service.Port == abc",
                                  '(Service.ID == "x"', 'Service.Tags == "v1"'])
def test_bad_filter_is_500_failed_to_create_evaluator(fleet, cc, expr):
    with pytest.raises(consul.ConsulException, match="Failed to create boolean expression evaluator"):
        cc.health.service("web", filter_expr=expr)


def test_unknown_datacenter_and_bad_parameters(fleet, emu, cc):
    with pytest.raises(consul.ConsulException, match="No path to datacenter"):
        cc.health.service("web", dc="dc9")
    with pytest.raises(BadRequest, match="Invalid wait time"):
        cc.health.service("web", index=5, wait="5 parsecs")
    for query, message in (("index=abc", "Invalid index"), ("passing=maybe", "Invalid value for ?passing"),
                           ("stale&consistent", "Cannot specify ?stale with ?consistent, conflicting semantics.")):
        r = requests.get(f"{emu.url}/v1/health/service/web?{query}", timeout=5)
        assert (r.status_code, r.text) == (400, message)


def test_catalog_services_filters_and_tag_union(fleet, cc):
    _, services = cc.catalog.services()
    assert sorted(services["web"]) == ["Canary", "v1", "v2"] and services["consul"] == []
    _, only = cc.catalog.services(filter_expr='ServiceMeta.env == "prod"')
    assert set(only) == {"web"} and sorted(only["web"]) == ["Canary", "v1", "v2"]
    _, rows = cc.catalog.service("web", tag="canary")
    assert [r["ServiceID"] for r in rows] == ["web-2"]


def test_health_state_and_checks_endpoints(fleet, cc):
    _, warn = cc.health.state("warning")
    assert [c["CheckID"] for c in warn] == ["service:web-3"]
    _, any_ = cc.health.state("any")
    assert {"serfHealth", "service:web-1"} <= {c["CheckID"] for c in any_}
    _, checks = cc.health.checks("web")
    assert sorted(c["ServiceID"] for c in checks) == ["web-1", "web-2", "web-3"]


# ---------------------------------------------------------------- blocking queries
def test_blocking_health_query_returns_promptly_after_a_change(emu, cc):
    register_web(cc)
    idx, _ = cc.health.service("web")
    done, box = in_thread(lambda: cc.health.service("web", index=idx, wait=LONG_WAIT))
    assert emu.wait_blocking(1, timeout=5), "query never parked"
    assert not done.is_set()
    cc.agent.check.ttl_pass("service:web-1", "up")
    assert done.wait(10), "blocking query was not woken by the change"
    new_idx, [e] = box["result"]
    assert int(new_idx) > int(idx) and checks_by_id(e)["service:web-1"]["Status"] == "passing"


def test_blocking_query_times_out_with_the_same_index(cc):
    """It holds until its wait is over (never earlier), then answers with the same index."""
    register_web(cc)
    idx, _ = cc.health.service("web")
    t0 = time.monotonic()
    assert cc.health.service("web", index=idx, wait="300ms")[0] == idx
    assert time.monotonic() - t0 >= 0.3, "returned before its wait: the query did not block"
    cat_idx, _ = cc.catalog.services()
    t0 = time.monotonic()
    assert cc.catalog.services(index=cat_idx, wait="200ms")[0] == cat_idx
    assert time.monotonic() - t0 >= 0.2, "returned before its wait: the query did not block"


def test_change_elsewhere_does_not_wake_an_unrelated_watch(emu, cc):
    """A change to another service leaves the watch parked until its own wait ends."""
    register_web(cc)
    idx, _ = cc.health.service("web")
    t0 = time.monotonic()
    done, box = in_thread(lambda: cc.health.service("web", index=idx, wait="1s"))
    assert emu.wait_blocking(1, timeout=5)
    emu.add_service("db", service_id="db-1")
    assert done.wait(10)
    assert time.monotonic() - t0 >= 1.0, "the unrelated change woke the watch"
    assert box["result"][0] == idx


def test_missing_service_blocks_then_wakes_on_registration_and_extinction(emu, cc):
    idx, entries = cc.health.service("ghost")
    assert entries == [] and int(idx) >= 1
    done, box = in_thread(lambda: cc.health.service("ghost", index=idx, wait=LONG_WAIT))
    assert emu.wait_blocking(1, timeout=5)
    emu.add_service("ghost", service_id="g-1")
    assert done.wait(10), "the registration did not wake the query"
    born_idx, entries = box["result"]
    assert [e["Service"]["ID"] for e in entries] == ["g-1"]
    emu.remove_service("g-1")
    gone_idx, entries = cc.health.service("ghost", index=born_idx, wait="2s")
    assert entries == [] and int(gone_idx) > int(born_idx)


def test_catalog_services_blocking_wakes_on_new_service(emu, cc):
    idx, _ = cc.catalog.services()
    done, box = in_thread(lambda: cc.catalog.services(index=idx, wait=LONG_WAIT))
    assert emu.wait_blocking(1, timeout=5)
    register_web(cc)
    assert done.wait(10), "the new service did not wake the query"
    assert "web" in box["result"][1]


def test_wait_is_clamped_and_defaulted(cc):
    emu = ConsulEmulator(default_wait=0.05, max_wait=0.1, jitter=False).start()
    try:
        c = consul.Consul(host="127.0.0.1", port=emu.port)
        idx, _ = c.catalog.services()
        assert c.catalog.services(index=idx)[0] == idx  # default wait, shrunk for the test
        assert c.catalog.services(index=idx, wait="10m")[0] == idx  # clamped to max_wait
    finally:
        emu.stop()


# ---------------------------------------------------------------- fault switches
def test_outage_refuses_connections_cuts_long_polls_and_recovers_on_the_same_port(emu, cc):
    register_web(cc)
    idx, _ = cc.health.service("web")
    port = emu.port
    done, box = in_thread(lambda: cc.health.service("web", index=idx, wait="10s"))
    assert emu.wait_blocking(1, timeout=5)
    emu.outage()
    assert done.wait(5), "in-flight blocking query was not cut"
    assert isinstance(box.get("error"), requests.exceptions.ConnectionError)
    with pytest.raises(requests.exceptions.ConnectionError):
        cc.catalog.services()
    with pytest.raises(requests.exceptions.ConnectionError):
        consul.Consul(host="127.0.0.1", port=port).agent.self()
    emu.recover()
    assert emu.port == port
    assert cc.health.service("web")[1][0]["Service"]["ID"] == "web-1"  # data survived


def test_reset_index_goes_backwards_and_wakes_waiters(emu, cc):
    for i in range(5):
        register_web(cc, f"web-{i}")
    idx, _ = cc.health.service("web")
    done, box = in_thread(lambda: cc.health.service("web", index=idx, wait=LONG_WAIT))
    assert emu.wait_blocking(1, timeout=5)
    emu.reset_index()
    assert done.wait(10), "the index reset did not wake the query"
    low, entries = box["result"]
    assert int(low) < int(idx) and len(entries) == 5  # data stays
    cc.agent.check.ttl_pass("service:web-0")
    after, _ = cc.health.service("web")
    assert int(low) < int(after) < int(idx)


def test_wake_all_returns_the_same_index(emu, cc):
    register_web(cc)
    idx, _ = cc.health.service("web")
    done, box = in_thread(lambda: cc.health.service("web", index=idx, wait=LONG_WAIT))
    assert emu.wait_blocking(1, timeout=5)
    emu.wake_all()
    assert done.wait(10), "wake_all did not wake the query"
    assert box["result"][0] == idx


def test_fail_next_and_error_rate(emu, cc):
    emu.fail_next(2)
    for _ in range(2):
        with pytest.raises(consul.ConsulException, match="500"):
            cc.catalog.services()
    assert cc.catalog.services()[1]["consul"] == []
    emu.fail_next(1, status=429, path_prefix="/v1/health/")
    assert cc.catalog.services()  # other paths unaffected
    with pytest.raises(ClientError, match="429"):
        cc.health.service("web")
    emu.set_error_rate(1.0, status=503)
    with pytest.raises(consul.ConsulException, match="503"):
        cc.kv.get("a")
    emu.set_error_rate(0.0)
    assert cc.kv.get("a") == (cc.kv.get("a")[0], None)


def test_drop_next_hangs_up_once(emu, cc):
    emu.drop_next(1, path_prefix="/v1/catalog/")
    with pytest.raises(requests.exceptions.ConnectionError):
        cc.catalog.services()
    assert cc.catalog.services()[1] == {"consul": []}


def test_latency_slows_but_answers(emu, cc):
    """Every answer waits at least the injected latency; 0 turns it off."""
    emu.set_latency(0.3)
    for _ in range(2):
        t0 = time.monotonic()
        assert cc.catalog.services()[1] == {"consul": []}
        assert time.monotonic() - t0 >= 0.3, "answered before the injected latency"
    emu.set_latency(600)  # were 0 ignored, the next answer would wait 10 minutes
    emu.set_latency(0)
    done, box = in_thread(cc.catalog.services)
    assert done.wait(10), "latency 0 did not turn the injected latency off"
    assert box["result"][1] == {"consul": []}


def test_request_counter_by_path(emu, cc):
    emu.reset_requests()
    for _ in range(3):
        cc.health.service("web")
    cc.catalog.services()
    assert emu.request_count("/v1/health/service/web") == 3
    assert emu.request_count("/v1/") == 4
    assert emu.requests["/v1/catalog/services"] == 1


def test_no_leader_and_stale_reads(emu, cc):
    emu.set_leader(False)
    with pytest.raises(consul.ConsulException, match="No cluster leader"):
        cc.catalog.services()
    r = requests.get(f"{emu.url}/v1/catalog/services?stale", timeout=5)
    assert r.status_code == 200 and r.headers["X-Consul-Knownleader"] == "false"
    assert r.headers["X-Consul-Effective-Consistency"] == "stale"
    emu.set_leader(True)
    emu.set_last_contact(1500)
    r = requests.get(f"{emu.url}/v1/catalog/services?stale", timeout=5)
    assert r.headers["X-Consul-Lastcontact"] == "1500"


def test_streaming_backend_headers():
    with ConsulEmulator(streaming=True) as emu:
        idx = requests.get(f"{emu.url}/v1/health/service/x", timeout=5).headers["X-Consul-Index"]
        r = requests.get(f"{emu.url}/v1/health/service/x?index={idx}&wait=10ms", timeout=5)
        assert r.headers["X-Consul-Query-Backend"] == "streaming"
        assert "X-Consul-Knownleader" not in r.headers and "X-Consul-Lastcontact" not in r.headers


def test_acl_tokens():
    with ConsulEmulator(acl_tokens={"root": "write", "ro": "read"}) as emu:
        anon = consul.Consul(host="127.0.0.1", port=emu.port)
        with pytest.raises(ACLPermissionDenied):
            anon.catalog.services()
        with pytest.raises(ACLPermissionDenied, match="ACL not found"):
            consul.Consul(host="127.0.0.1", port=emu.port, token="bogus").catalog.services()
        root = consul.Consul(host="127.0.0.1", port=emu.port, token="root")
        assert root.catalog.services()[1] == {"consul": []}
        register_web(root)
        ro = consul.Consul(host="127.0.0.1", port=emu.port, token="ro")
        assert ro.health.service("web")[1]
        with pytest.raises(ACLPermissionDenied):
            ro.kv.put("a", "b")
        r = requests.get(f"{emu.url}/v1/catalog/services", headers={"X-Consul-Token": "root"}, timeout=5)
        assert r.headers["X-Consul-Default-Acl-Policy"] == "deny"


def test_hidden_nodes_are_silently_filtered(fleet, emu):
    emu.hide_nodes("node-c")
    url = f"{emu.url}/v1/health/service/web"
    r = requests.get(url, headers={"X-Consul-Token": "anything"}, timeout=5)
    assert [e["Service"]["ID"] for e in r.json()] == ["web-1"]
    assert r.headers["X-Consul-Results-Filtered-By-Acls"] == "true"
    assert "X-Consul-Results-Filtered-By-Acls" not in requests.get(url, timeout=5).headers
