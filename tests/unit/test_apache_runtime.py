"""Apache's runtime planning (lbctl/targets/apache/runtime.py): which model changes
balancer-manager can make, as which operations, and which need a graceful."""

import pytest

from lbctl import model
from lbctl.targets.apache import runtime, view
from lbctl.targets.apache.balancers import Balancer, Health, Worker

CHECK = Health("TCP", 2000, 2, 3, "", "")


def member(name, port, **kw):
    return model.Member(name, "10.0.0.1", port, **kw)


def desired(*members, listeners=None, **pool):
    listeners = listeners or (model.Listener("web", 8080, default_pool="app"),)
    return model.Desired(listeners, (model.Pool("app", tuple(members), **pool),))


def worker(port, route="", lf=1.0, status="Init Ok ", fixed=(("max", "25"),), health=CHECK):
    return Worker(f"http://10.0.0.1:{port}", "10.0.0.1", port, route, lf, status, fixed, health)


def running(*workers, max_members=4):
    return {"app": Balancer("app", "nonce-1", tuple(workers), max_members)}


A, B, C = member("a", 81), member("b", 82), member("c", 83)
RUNNING = running(worker(81, "a"), worker(82, "b"))


def test_nothing_changed_is_no_operation():
    assert runtime.plan(desired(A, B), desired(A, B), RUNNING) == []


def test_weight_is_the_load_factor():
    ops = runtime.plan(desired(A, B), desired(A, model.replace(B, weight=7)), RUNNING)
    assert [(op.url, op.route, op.loadfactor, op.flags, op.add) for op in ops] == \
        [("http://10.0.0.1:82", "b", 7, frozenset(), False)]


@pytest.mark.parametrize("state, flags", [("drain", "N"), ("maint", "D"), ("backup", "H"), ("enabled", "")])
def test_states_are_status_flags(state, flags):
    before = desired(A, model.replace(B, state="maint" if state == "enabled" else "enabled"))
    ops = runtime.plan(before, desired(A, model.replace(B, state=state)), RUNNING)
    assert [(op.route, op.flags) for op in ops] == [("b", frozenset(flags))]


def test_a_removed_member_is_disabled_and_loses_its_route_first():
    ops = runtime.plan(desired(A, B), desired(model.replace(A, weight=3)), RUNNING)
    assert [(op.url, op.route, op.flags) for op in ops] == \
        [("http://10.0.0.1:82", "", frozenset("D")), ("http://10.0.0.1:81", "a", frozenset())]


def test_a_member_back_on_its_url_is_enabled_again_not_added():
    disabled = running(worker(81, "a"), worker(82, "", status="Init Dis "), max_members=2)
    ops = runtime.plan(desired(A), desired(A, B), disabled)
    assert [(op.url, op.route, op.flags, op.add) for op in ops] == [("http://10.0.0.1:82", "b", frozenset(), False)]


def test_a_new_member_is_added_with_its_siblings_health_check():
    ops = runtime.plan(desired(A, B), desired(A, B, model.replace(C, weight=5, state="drain")), RUNNING)
    assert [(op.url, op.route, op.loadfactor, op.flags, op.add, op.health) for op in ops] == \
        [("http://10.0.0.1:83", "c", 5, frozenset("N"), True, CHECK)]


def test_adds_beyond_growth_need_a_graceful():
    after = desired(A, B, C, member("d", 84), member("e", 85))
    assert runtime.plan(desired(A, B), after, RUNNING) is None
    assert "3 new members but room for 2 (4 slots, 2 used; raise growth)" in runtime.why_not(desired(A, B), after,
                                                                                            RUNNING)
    assert runtime.plan(desired(A, B), desired(A, B, C, member("d", 84)), RUNNING) is not None


def test_disabled_leftovers_keep_their_slots():
    full = running(worker(81, "a"), worker(82, "b"), worker(90, "", status="Init Dis "), worker(91, "", status="Init Dis "))
    assert "room for 0" in runtime.why_not(desired(A, B), desired(A, B, C), full)


def test_unknown_room_needs_a_graceful():
    assert runtime.plan(desired(A, B), desired(A, B, C), running(worker(81, "a"), worker(82, "b"),
                                                                 max_members=None)) is None


def test_new_members_run_without_the_timeouts_and_retry_of_the_file():
    """What lbctl's template gives every member and balancer-manager cannot: accepted (documented)."""
    fixed = (("max", "25"), ("timeout", "30"), ("retry", "4"), ("connectiontimeout", "5000"))
    configured = running(worker(81, "a", fixed=fixed), worker(82, "b", fixed=fixed))
    assert [op.add for op in runtime.plan(desired(A, B), desired(A, B, C), configured)] == [True]


@pytest.mark.parametrize("fixed", [(("keepalive", "On"),), (("disablereuse", "On"),), (("acquire", "100"),)])
def test_settings_balancer_manager_cannot_set_keep_new_members_out(fixed):
    configured = running(worker(81, "a", fixed=fixed), worker(82, "b", fixed=fixed))
    why = runtime.why_not(desired(A, B), desired(A, B, C), configured)
    assert why == f"balancer://app: a new member's {fixed[0][0]} cannot be set through balancer-manager"
    # ... but weights and states still change at runtime
    assert runtime.plan(desired(A, B), desired(A, model.replace(B, weight=2)), configured)


def test_maxconn_keeps_new_members_out():
    assert "maxconn" in runtime.why_not(desired(A, B, maxconn=10), desired(A, B, C, maxconn=10), RUNNING)


def test_a_new_member_needs_a_running_sibling_to_copy():
    assert "no configured member" in runtime.why_not(desired(), desired(C), running())


@pytest.mark.parametrize("change", [
    {"balance": "leastconn"}, {"health": model.HealthCheck(type="http", path="/health")},
    {"connect_timeout_ms": 100}, {"server_timeout_ms": 100}, {"sticky_cookie": "SRV"}, {"maxconn": 5}])
def test_pool_settings_need_a_graceful(change):
    assert runtime.why_not(desired(A, B), desired(A, model.replace(B, weight=2), **change), RUNNING) == \
        "pool app's settings changed"


def test_listeners_and_pool_lists_need_a_graceful():
    moved = (model.Listener("web", 8081, default_pool="app"),)
    assert runtime.why_not(desired(A), desired(A, listeners=moved), RUNNING) == "a listener changed"
    two = model.Desired(desired(A).listeners, (*desired(A).pools, model.Pool("other")))
    assert runtime.why_not(desired(A), two, RUNNING) == "a pool was added or removed"


def test_a_moved_member_needs_a_graceful():
    assert "moved to http://10.0.0.1:99" in runtime.why_not(desired(A, B), desired(A, model.replace(B, port=99)),
                                                             RUNNING)


def test_load_factors_beyond_100_need_a_graceful():
    assert "weight 101" in runtime.why_not(desired(A, B), desired(A, model.replace(B, weight=101)), RUNNING)


def test_what_runs_must_agree_with_the_file():
    assert "member b (http://10.0.0.1:82) does not run" in runtime.why_not(
        desired(A, B), desired(A, model.replace(B, weight=2)), running(worker(81, "a")))
    assert runtime.why_not(desired(A), desired(model.replace(A, weight=2)), {}) == "balancer://app does not run"


def test_shared_addresses_need_a_graceful():
    assert "share an address" in runtime.why_not(desired(A), desired(A, member("twin", 81)), RUNNING)


def test_urls_routes_and_balancer_names_are_the_templates():
    assert runtime.url(model.Member("v6", "fd00::1", 80)) == "http://[fd00::1]:80"
    long = member("x" * 80, 82)
    before = model.Desired(desired(A).listeners, (model.Pool("App", (A,)),))
    after = model.Desired(desired(A).listeners, (model.Pool("App", (A, long)),))
    ops = runtime.plan(before, after, running(worker(81, "a")))
    assert [(op.balancer, op.route) for op in ops] == [("app", view.route(long.name))]
    assert len(ops[0].route) == view.ROUTE_MAX
