"""Apache's runtime planning (lbctl/targets/apache/runtime.py): which model changes
balancer-manager can make, as which operations, and which need a graceful."""

import pytest

from lbctl import model
from lbctl.targets.apache import runtime, view
from lbctl.targets.apache.balancers import Balancer, Op, Worker


def member(name, port, **kw):
    return model.Member(name, "10.0.0.1", port, **kw)


def desired(*members, listeners=None, name="app", **pool):
    listeners = listeners or (model.Listener("web", 8080, default_pool=name),)
    return model.Desired(listeners, (model.Pool(name, tuple(members), **pool),))


def worker(port, route="", lf=1.0, status="Init Ok "):
    return Worker(f"http://10.0.0.1:{port}", "10.0.0.1", port, route, lf, status)


def running(*workers):
    return {"app": Balancer("app", "nonce-1", tuple(workers))}


A, B, C = member("a", 81), member("b", 82), member("c", 83)
RUNNING = running(worker(81, "a"), worker(82, "b"))


def ops_of(before, after, state=RUNNING):
    return [(op.balancer, op.url, op.route, op.loadfactor, "".join(sorted(op.flags)))
            for op in runtime.plan(before, after, state)]


def test_nothing_changed_is_no_operation():
    assert runtime.plan(desired(A, B), desired(A, B), RUNNING) == []


def test_weight_is_the_load_factor():
    assert ops_of(desired(A, B), desired(A, model.replace(B, weight=7))) == \
        [("app", "http://10.0.0.1:82", "b", 7, "")]


@pytest.mark.parametrize("state, flags", [("drain", "N"), ("maint", "D"), ("backup", "H"), ("enabled", "")])
def test_states_are_the_files_status_flags(state, flags):
    before = desired(A, model.replace(B, state="maint" if state == "enabled" else "enabled"))
    assert ops_of(before, desired(A, model.replace(B, state=state))) == [("app", "http://10.0.0.1:82", "b", 1, flags)]
    assert view.STATUS[state] == ("+" + flags if flags else "")


def test_a_removed_member_is_disabled_and_loses_its_route_first():
    assert ops_of(desired(A, B), desired(model.replace(A, weight=3))) == \
        [("app", "http://10.0.0.1:82", "", 1, "D"), ("app", "http://10.0.0.1:81", "a", 3, "")]


def test_a_member_back_on_its_url_is_enabled_again():
    disabled = running(worker(81, "a"), worker(82, "", status="Init Dis "))
    assert ops_of(desired(A), desired(A, B), disabled) == [("app", "http://10.0.0.1:82", "b", 1, "")]


def test_a_renamed_member_keeps_its_worker():
    assert ops_of(desired(A, B), desired(A, member("b2", 82))) == [("app", "http://10.0.0.1:82", "b2", 1, "")]


def test_a_new_member_is_added_within_spare_slots_else_needs_a_graceful():
    assert runtime.plan(desired(A, B), desired(A, B, C), RUNNING) == [
        Op("app", "http://10.0.0.1:83", "c", 1, frozenset(), add=True)]
    assert runtime.why_not(desired(A, B), desired(A, B, C), RUNNING, adds=False) == \
        "balancer://app: member c (http://10.0.0.1:83) is new and the balancers have no spare slots (growth 0)"


def test_a_virtual_host_gets_the_ops_of_the_balancers_it_holds_only():
    after = desired(A, model.replace(B, weight=3))
    assert runtime.planned(desired(A, B), after, RUNNING, held=("other",)) == ([], None)
    assert runtime.planned(desired(A, B), after, {}, held=("app",))[1] == "balancer://app does not run"


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
    assert "b moved to http://10.0.0.1:99" in runtime.why_not(desired(A, B), desired(A, model.replace(B, port=99)),
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
    long = model.replace(B, name="x" * 80)
    ops = ops_of(desired(A, B, name="App"), desired(A, long, name="App"))
    assert ops == [("app", "http://10.0.0.1:82", view.route(long.name), 1, "")]
    assert len(ops[0][2]) == view.ROUTE_MAX
