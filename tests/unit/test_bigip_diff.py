"""The pure BIG-IP diff: ownership, add before remove, draining, nodes.  No network."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lbctl import model
from lbctl.errors import ConfigError
from lbctl.targets.bigip import diff
from lbctl.targets.bigip import model as bm
from lbctl.targets.bigip.diff import rest_call

P = "Common"
MARK = "lbctl:owner=lbctl"
NOW = 1_700_000_000.0


def pool(name: str, *members: tuple, balance: str = "roundrobin", check: str = "http", **kw) -> model.Pool:
    health = model.HealthCheck(type=check, path="/health", expect_status=200, interval_ms=2000, fall=3)
    return model.Pool(name=name, balance=balance, health=health, members=tuple(
        model.Member(name=m[0], address=m[1], port=m[2], **(m[3] if len(m) > 3 else {})) for m in members), **kw)


def wanted(*pools: model.Pool) -> bm.Wanted:
    return bm.wanted(model.Desired(pools=tuple(pools)), P, "lbctl")


def device(w: bm.Wanted | None = None, *, extra_pools=(), extra_monitors=(), nodes=None, virtuals=None,
           connections=None) -> bm.DeviceState:
    pools = dict(w.pools) if w else {}
    monitors = dict(w.monitors) if w else {}
    pools.update({p.name: p for p in extra_pools})
    monitors.update({m.name: m for m in extra_monitors})
    return bm.DeviceState(P, pools, monitors, nodes=nodes, virtual_pools=virtuals, connections=connections or {})


def plan(current, want, drain_time=300.0, now=NOW):
    return diff.plan(current, want, diff.Policy("lbctl", now, drain_time))


def steps(p: diff.Plan) -> list[tuple[str, str]]:
    return [(op.step, op.label) for op in p.ops]


WEB = pool("web", ("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80))
API = pool("api", ("api-1", "10.0.1.1", 9000), check="tcp")


# -- from the model ------------------------------------------------------------------------
def test_model_maps_to_pools_members_and_monitors():
    w = wanted(pool("web", ("a", "10.0.0.1", 80, {"weight": 3}), ("b", "fd00::1", 80, {"state": "backup"}),
                    ("c", "10.0.0.3", 80, {"state": "drain"}), ("d", "10.0.0.4", 80, {"state": "maint"}),
                    balance="leastconn", maxconn=50))
    web = w.pools["web"]
    assert (web.lb_mode, web.monitor, web.min_active, web.description) == (
        "ratio-least-connections-member", "/Common/web_http", 1, MARK)
    members = {m.description: m for m in web.members}
    assert members["a"] == bm.MemberSpec("10.0.0.1:80", "10.0.0.1", 80, ratio=3, priority_group=1,
                                         connection_limit=50, admin="enabled", description="a")
    assert (members["b"].name, members["b"].priority_group, members["b"].admin) == ("fd00::1.80", 0, "enabled")
    assert (members["c"].admin, members["d"].admin) == ("disabled", "offline")
    mon = w.monitors["web_http"]
    assert (mon.type, mon.send, mon.recv, mon.interval, mon.timeout) == (
        "http", "GET /health HTTP/1.0\\r\\n\\r\\n", "^HTTP/1\\.[01] 200", 2, 7)


def test_equal_weights_use_plain_modes_and_hash_modes_fall_back_to_round_robin():
    assert wanted(pool("a", ("x", "10.0.0.1", 80))).pools["a"].lb_mode == "round-robin"
    assert wanted(pool("a", ("x", "10.0.0.1", 80), balance="source")).pools["a"].lb_mode == "round-robin"
    assert wanted(pool("a", ("x", "10.0.0.1", 80), check="none")).pools["a"].monitor is None
    host_check = model.HealthCheck(type="http", path="/h", host="api.example.com", expect_status=204)
    mon = wanted(model.Pool("a", health=host_check)).monitors["a_http"]
    assert mon.send == "GET /h HTTP/1.1\\r\\nHost: api.example.com\\r\\nConnection: Close\\r\\n\\r\\n"
    assert mon.recv == "^HTTP/1\\.[01] 204"


def test_a_host_name_member_is_an_error_naming_pool_and_member():
    with pytest.raises(ConfigError, match=r"pools.web: member web-1: address 'app.internal' is a host name"):
        wanted(pool("web", ("web-1", "app.internal", 80)))


# -- create, no-op, update -------------------------------------------------------------------
def test_empty_device_creates_monitors_before_pools():
    w = wanted(WEB, API)
    p = plan(device(), w)
    assert steps(p) == [("create monitor", "monitor api_tcp"), ("create monitor", "monitor web_http"),
                        ("create pool", "pool api"), ("create pool", "pool web")]
    assert p.after == (w.pools, w.monitors)
    assert "+ pool web (round-robin, monitor /Common/web_http, 2 members)" in p.summary
    assert "+ member web/10.0.0.1:80 ratio=1 priority=0 limit=0 enabled 'web-1'" in p.summary


def test_the_same_state_again_is_no_operation():
    w = wanted(WEB, API)
    p = plan(device(w), w)
    assert p.ops == () and p.summary == () and p.missing == frozenset()
    assert p.before == p.after


def test_one_changed_member_is_one_update():
    w = wanted(WEB)
    changed = wanted(pool("web", ("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80, {"state": "maint"})))
    p = plan(device(w), changed)
    assert steps(p) == [("update member", "member web/10.0.0.2:80")]
    assert p.summary == ("~ member web/10.0.0.2:80: state 'enabled' -> 'offline'",)
    assert p.ops[0].spec.admin == "offline"


def test_pool_and_monitor_settings_are_updated_in_place():
    w = wanted(WEB)
    slower = wanted(pool("web", ("web-1", "10.0.0.1", 80, {"weight": 2}), ("web-2", "10.0.0.2", 80)))
    slower.monitors["web_http"] = replace(slower.monitors["web_http"], interval=9)
    p = plan(device(w), slower)
    assert steps(p) == [("update monitor", "monitor web_http"), ("update pool", "pool web"),
                        ("update member", "member web/10.0.0.1:80")]
    assert "~ pool web: mode 'round-robin' -> 'ratio-member'" in p.summary


def test_a_check_type_change_adds_the_new_monitor_before_removing_the_old():
    w = wanted(WEB)
    tcp = wanted(pool("web", ("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80), check="tcp"))
    p = plan(device(w), tcp)
    assert steps(p) == [("create monitor", "monitor web_tcp"), ("update pool", "pool web"),
                        ("delete monitor", "monitor web_http")]


def test_a_new_member_of_an_existing_pool_is_created_alone():
    w = wanted(WEB)
    more = wanted(pool("web", ("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80), ("web-3", "10.0.0.3", 80)))
    assert steps(plan(device(w), more)) == [("create member", "member web/10.0.0.3:80")]


# -- draining ----------------------------------------------------------------------------------
def test_a_removed_member_is_disabled_and_marked_first():
    w = wanted(WEB)
    p = plan(device(w), wanted(pool("web", ("web-1", "10.0.0.1", 80))))
    assert steps(p) == [("drain member", "member web/10.0.0.2:80")]
    drained = p.ops[0].spec
    assert (drained.admin, drained.description, drained.draining_since) == (
        "disabled", f"lbctl:drain-since={int(NOW)}", int(NOW))
    assert drained in p.after[0]["web"].members
    assert p.summary == ("~ member web/10.0.0.2:80: draining (disabled now; deleted after 300s or at zero "
                         "connections)",)


def draining(w: bm.Wanted, since: float = NOW) -> bm.Wanted:
    """``w`` with web-2 (10.0.0.2:80) disabled and marked as draining since ``since``."""
    web = w.pools["web"]
    members = tuple(replace(m, admin="disabled", description=f"lbctl:drain-since={int(since)}")
                    if m.address == "10.0.0.2" else m for m in web.members)
    return bm.Wanted({**w.pools, "web": replace(web, members=members)}, w.monitors)


def test_a_draining_member_waits_for_connections_or_the_drain_time():
    only_one = wanted(pool("web", ("web-1", "10.0.0.1", 80)))
    state = draining(wanted(WEB), since=NOW - 100)
    first = plan(device(state), only_one)
    assert first.missing == frozenset({("connections", "web")}) and first.ops == ()
    busy = plan(device(state, connections={"web": {"10.0.0.2:80": 4}}), only_one)
    assert busy.ops == () and busy.waiting == (
        "member web/10.0.0.2:80 draining: 4 connections, 200s of drain time left",)
    idle = plan(device(state, connections={"web": {"10.0.0.2:80": 0}}, nodes={"10.0.0.2": ""}), only_one)
    assert steps(idle) == [("delete member", "member web/10.0.0.2:80"), ("delete node", "node 10.0.0.2")]
    assert idle.summary[0] == "- member web/10.0.0.2:80 (no connections left)"
    late = plan(device(draining(wanted(WEB), since=NOW - 300), nodes={}), only_one)
    assert steps(late) == [("delete member", "member web/10.0.0.2:80")]  # the node had a description: kept
    assert late.missing == frozenset()


def test_drain_time_zero_deletes_at_once():
    p = plan(device(wanted(WEB), nodes={"10.0.0.2": ""}), wanted(pool("web", ("web-1", "10.0.0.1", 80))),
             drain_time=0)
    assert steps(p) == [("delete member", "member web/10.0.0.2:80"), ("delete node", "node 10.0.0.2")]


def test_a_draining_member_back_in_the_inventory_is_enabled_again():
    p = plan(device(draining(wanted(WEB))), wanted(WEB))
    assert steps(p) == [("update member", "member web/10.0.0.2:80")]
    assert p.summary[0].endswith("(back in the inventory: draining stops)")
    assert p.after[0]["web"] == wanted(WEB).pools["web"]


def test_a_draining_member_enabled_by_hand_is_disabled_again():
    state = draining(wanted(WEB), since=NOW - 10)
    members = tuple(replace(m, admin="enabled") for m in state.pools["web"].members)
    state = bm.Wanted({"web": replace(state.pools["web"], members=members)}, state.monitors)
    p = plan(device(state, connections={"web": {"10.0.0.2:80": 2}}), wanted(pool("web", ("web-1", "10.0.0.1", 80))))
    assert steps(p) == [("drain member", "member web/10.0.0.2:80")]
    assert p.ops[0].spec.admin == "disabled" and p.ops[0].spec.draining_since == int(NOW - 10)


def test_a_removed_pool_drains_then_goes_with_its_monitor_and_nodes():
    both = wanted(WEB, API)
    start = plan(device(both), wanted(API))
    assert [s for s, _ in steps(start)] == ["drain member", "drain member"]
    assert "web" in start.after[0] and "web_http" in start.after[1]
    drained = bm.Wanted({"api": both.pools["api"], "web": start.after[0]["web"]}, both.monitors)
    later = plan(device(drained, nodes={"10.0.0.1": "", "10.0.0.2": ""}, virtuals={}), wanted(API), now=NOW + 301)
    assert steps(later) == [("delete pool", "pool web"), ("delete monitor", "monitor web_http"),
                            ("delete node", "node 10.0.0.1"), ("delete node", "node 10.0.0.2")]
    assert later.after == (wanted(API).pools, wanted(API).monitors)


def test_a_pool_in_use_by_a_virtual_server_stays_empty():
    both = wanted(WEB, API)
    p = plan(device(both, nodes={}, virtuals={"web": "/Common/vs_web"}), wanted(API), drain_time=0)
    assert steps(p) == [("delete member", "member web/10.0.0.1:80"), ("delete member", "member web/10.0.0.2:80")]
    assert p.after[0]["web"].members == () and "web_http" in p.after[1]
    assert p.waiting == ("pool web stays: virtual server /Common/vs_web uses it",)


def test_reading_virtuals_and_nodes_is_asked_for_only_when_deleting():
    both = wanted(WEB, API)
    assert "virtuals" in plan(device(both), wanted(API), drain_time=0).missing
    p = plan(device(both, virtuals={}), wanted(API), drain_time=0)
    assert p.missing == frozenset({"nodes"})
    assert plan(device(both), both).missing == frozenset()


# -- ownership ------------------------------------------------------------------------------
def test_unowned_objects_are_never_touched():
    theirs = bm.PoolSpec("legacy", monitor="/Common/web_http", members=(
        bm.MemberSpec("10.0.0.2:80", "10.0.0.2", 80),))
    their_monitor = bm.MonitorSpec("legacy_http", "http", description="hand-made")
    w = wanted(WEB)
    p = plan(device(w, extra_pools=[theirs], extra_monitors=[their_monitor], nodes={"10.0.0.1": "", "10.0.0.2": ""},
                    virtuals={}), wanted(), drain_time=0)
    # lbctl's web goes, but its monitor (used by the unowned pool) and node 10.0.0.2 (too) stay
    assert steps(p) == [("delete pool", "pool web"), ("delete node", "node 10.0.0.1")]
    assert p.before == ({"web": w.pools["web"]}, w.monitors)
    assert p.after == ({}, w.monitors)


def test_an_unowned_pool_or_monitor_with_a_wanted_name_is_an_error():
    theirs = bm.PoolSpec("web", description="created by hand")
    with pytest.raises(ConfigError, match=r"^pool /Common/web exists on the device and is not lbctl's \(its "
                                          r"description lacks lbctl:owner=lbctl\); lbctl does not take it over"):
        plan(device(extra_pools=[theirs]), wanted(WEB))
    with pytest.raises(ConfigError, match=r"^monitor /Common/web_http exists"):
        plan(device(extra_monitors=[bm.MonitorSpec("web_http", "http")]), wanted(WEB))


def test_another_owner_is_not_this_owner():
    other = replace(wanted(WEB).pools["web"], description="lbctl:owner=blue")
    with pytest.raises(ConfigError, match="not lbctl's"):
        plan(device(extra_pools=[other]), wanted(WEB))
    p = plan(device(extra_pools=[other], virtuals={}, nodes={}), wanted(), drain_time=0)
    assert p.ops == ()


# -- parsing the device and writing to it ---------------------------------------------------
def test_read_values_of_admin_state_and_monitor_rules_are_normalised():
    raw = {"name": "web", "loadBalancingMode": "round-robin", "monitor": "/Common/web_http ",
           "description": MARK, "membersReference": {"items": [
               {"name": "10.0.0.1:80", "address": "10.0.0.1", "session": "monitor-enabled", "state": "up"},
               {"name": "10.0.0.2:80", "address": "10.0.0.2", "session": "user-disabled", "state": "down"},
               {"name": "fd00::3.80", "address": "fd00::3", "session": "user-disabled", "state": "user-down"}]}}
    parsed = bm.parse_pool(raw)
    assert parsed.monitor == "/Common/web_http"
    assert [(m.name, m.port, m.admin) for m in parsed.members] == [
        ("10.0.0.1:80", 80, "enabled"), ("10.0.0.2:80", 80, "disabled"), ("fd00::3.80", 80, "offline")]
    assert bm.monitor_refs("min 1 of { /Common/a /P/b }") == {"/Common/a", "/P/b"}


def test_operations_become_rest_calls():
    w = wanted(pool("web", ("a", "fd00::1", 80)))
    spec = w.pools["web"]
    member = spec.members[0]
    assert rest_call("Dev", diff.Op("create pool", "web", spec=spec))[:2] == ("POST", "/tm/ltm/pool/")
    assert rest_call("Dev", diff.Op("create pool", "web", spec=spec))[2]["members"] == [{
        "name": "fd00::1.80", "partition": "Dev", "ratio": 1, "priorityGroup": 0, "connectionLimit": 0,
        "session": "user-enabled", "state": "user-up", "description": "a"}]
    assert rest_call("Dev", diff.Op("update member", member.name, "web", member))[:2] == (
        "PATCH", "/tm/ltm/pool/~Dev~web/members/~Dev~fd00::1.80")
    assert rest_call("Dev", diff.Op("delete monitor", "web_http", spec=w.monitors["web_http"])) == (
        "DELETE", "/tm/ltm/monitor/http/~Dev~web_http", None)
    assert rest_call("Dev", diff.Op("delete node", "fd00::1")) == ("DELETE", "/tm/ltm/node/~Dev~fd00::1", None)
    assert rest_call("Dev", diff.Op("update pool", "web", spec=replace(spec, monitor=None)))[2]["monitor"] == "none"


def test_state_text_is_the_change_text():
    text = bm.state_text(*plan(device(), wanted(WEB)).after)
    assert text.splitlines()[:2] == [
        "monitor web_http http interval=2 timeout=7 send='GET /health HTTP/1.0\\\\r\\\\n\\\\r\\\\n' "
        "recv='^HTTP/1\\\\.[01] 200'",
        "pool web round-robin monitor=/Common/web_http min-active=0"]
