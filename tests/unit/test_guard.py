"""The removal guard, on models and on the text each target renders."""

import pytest

from lbctl import config, guard, inventory
from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.render import render
from lbctl.targets.bigip import model as bigip_model
from lbctl.targets.nginx import target as nginx

STRICT = guard.Policy()


def desired(members: dict[str, list[str]], states: dict[str, str] | None = None, listeners=()):
    states = states or {}
    pools = {pool: {"members": [{"name": n, "address": "10.0.0.1", "port": 8000 + i, "state": states.get(n, "enabled")}
                                for i, n in enumerate(names)]} for pool, names in members.items()}
    return inventory.from_raw({"pools": pools, "listeners": {
        name: {"address": "127.0.0.1", "port": 18000 + i, "default_pool": pool} for i, (name, pool) in enumerate(listeners)}})


def refusals(before, after, policy=STRICT):
    return guard.refusals(guard.served(before), guard.served(after), policy)


def test_growth_and_a_first_apply_pass():
    assert refusals(desired({}), desired({"web": ["a"]})) == []
    assert refusals(desired({"web": ["a"]}), desired({"web": ["a", "b"]})) == []


def test_removing_half_passes_more_is_refused():
    before = desired({"web": ["a", "b", "c", "d"]})
    assert refusals(before, desired({"web": ["a", "b"]})) == []
    assert refusals(before, desired({"web": ["a"]})) == [
        "pool web: 3 of 4 serving members would stop serving (b, c, d), more than max_removal 50%"]
    assert refusals(before, desired({"web": ["a"]}), guard.Policy(max_removal=0.75)) == []


def test_members_going_to_maintenance_or_drain_count_as_removed():
    before = desired({"web": ["a", "b", "c"]})
    after = desired({"web": ["a", "b", "c"]}, {"b": "maint", "c": "drain"})
    assert refusals(before, after) == [
        "pool web: 2 of 3 serving members would stop serving (b, c), more than max_removal 50%"]


def test_emptying_or_removing_a_serving_pool_is_refused_whatever_max_removal():
    before = desired({"web": ["a"], "api": ["x", "y"]})
    assert refusals(before, desired({"web": [], "api": ["x", "y"]}), guard.Policy(max_removal=1.0)) == [
        "it would empty pool web (stopping a)"]
    assert refusals(before, desired({"web": ["a"]}), guard.Policy(max_removal=1.0)) == [
        "it would remove pool api and its 2 serving members (x, y)"]
    assert refusals(desired({"web": [], "api": ["x"]}), desired({"api": ["x"]})) == []  # web served nothing


def test_removing_a_listener_is_refused():
    before = desired({"web": ["a"]}, listeners=[("public", "web"), ("admin", "web")])
    assert refusals(before, desired({"web": ["a"]}, listeners=[("public", "web")])) == [
        "it would remove listener admin"]


def test_min_members():
    before = desired({"web": ["a", "b", "c"]})
    assert refusals(before, desired({"web": ["a", "b"]}), guard.Policy(min_members=3)) == [
        "pool web: 2 serving members would be fewer than min_members 3 (now 3)"]


def test_an_empty_model_is_refused_even_with_allow_removal():
    before = desired({"web": ["a"]}, listeners=[("public", "web")])
    allow = guard.Policy(allow=frozenset({"web", "public"}))
    assert refusals(before, desired({}), allow) == [
        "it would leave nothing to serve (no listeners, no pools: an empty or truncated source?)"]
    assert refusals(desired({}), desired({})) != []  # even when nothing served before
    assert refusals(before, desired({}), guard.Policy(force=True)) == []


def test_allow_removal_lets_only_the_named_pools_and_listeners_through():
    before = desired({"web": ["a", "b", "c"], "api": ["x", "y", "z"]}, listeners=[("public", "web"), ("admin", "api")])
    after = desired({"web": ["a"], "api": ["x"]}, listeners=[("public", "web")])
    assert len(refusals(before, after)) == 3
    assert refusals(before, after, guard.Policy(allow=frozenset({"web", "admin"}))) == [
        "pool api: 2 of 3 serving members would stop serving (y, z), more than max_removal 50%"]


def test_check_is_one_line_naming_the_way_through():
    before, after = guard.served(desired({"web": ["a"]})), guard.served(desired({"web": []}))
    with pytest.raises(guard.Refused) as info:
        guard.check("edge", before, after, STRICT)
    assert str(info.value) == ("edge: refusing the change: it would empty pool web (stopping a) "
                               "(pass --force, --allow-removal NAME or lbctl approve to let it through)")
    with pytest.raises(guard.Refused, match=r"\(pass --force to let it through\)$"):
        guard.check("edge", before, guard.Served(), STRICT)


def test_many_names_are_shortened():
    before = desired({"web": [f"m{i}" for i in range(10)]})
    assert refusals(before, desired({"web": ["m0"]}))[0].startswith(
        "pool web: 9 of 10 serving members would stop serving (m1, m2, m3, m4, m5 and 4 more)")


@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_targets_read_back_what_the_model_serves(kind):
    model = desired({"web": ["a", "b", "c"], "api": ["x"]}, {"b": "maint", "c": "backup"},
                    listeners=[("public", "web"), ("admin", "api")])
    text = render(model, kind, config.options(kind))
    read = (haproxy_cfg.served if kind == "haproxy" else nginx.served)(text)
    assert read.listeners == {"public", "admin"}
    assert read.pools == {"web": {"a", "c"}, "api": {"x"}}
    empty = (haproxy_cfg.served if kind == "haproxy" else nginx.served)(render(desired({}), kind, config.options(kind)))
    assert empty.empty


def test_haproxy_slots_are_known_by_address():
    text = "backend web\n    server slot1 10.0.0.1:80 weight 1\n    server slot2 127.0.0.1:9 weight 1 disabled\n" \
           "    server slot3 10.0.0.2:80 weight 0\n"
    assert haproxy_cfg.served(text).pools == {"web": {"10.0.0.1:80"}}


def test_bigip_state_text():
    text = ("pool web round-robin monitor=none min-active=0\n"
            "  member 10.0.0.1:80 ratio=1 priority=0 limit=0 enabled ''\n"
            "  member 10.0.0.2:80 ratio=1 priority=0 limit=0 disabled ''\n")
    assert bigip_model.served(text) == guard.Served(frozenset(), {"web": frozenset({"10.0.0.1:80"})})


def test_member_changes_name_members():
    before = desired({"web": ["a", "b", "c"], "old": ["z"]})
    after = desired({"web": ["a", "c", "d"]}, {"c": "drain"})
    assert guard.member_changes(before, after) == ["web: +d, -b, drain c", "old: pool removed"]


def test_refusals_are_a_metric_and_in_readyz():
    from lbctl import model
    from lbctl.watch import controller
    from lbctl.watch.metrics import Metrics, StatusServer
    from lbctl_testkit.support import http_get

    metrics = Metrics()
    metrics.record({"target": "edge", "action": "apply", "result": "refused", "duration_s": None})
    assert b'lbctl_guard_refusals_total{action="apply",target="edge"} 1.0' in metrics.text()
    assert b'lbctl_applies_total{' not in metrics.text()  # a refusal is not an apply
    ctl = controller.Controller(lambda: None, metrics=metrics)
    ctl.applied = model.Desired()
    ctl.refusals["edge"] = "edge: refusing the change: it would empty pool app (stopping a)"
    server = StatusServer(("127.0.0.1", 0), metrics, ctl.alive, ctl.ready)
    try:
        answer = http_get(f"http://127.0.0.1:{server.server_address[1]}/readyz")
    finally:
        server.shutdown()
        server.server_close()
    assert (answer.status, answer.body) == (200, "ready\nrefused: edge: refusing the change: it would empty pool app "
                                                 "(stopping a)\n")


def test_haproxy_works_out_what_a_candidate_serves_from_the_changed_lines():
    from lbctl.targets.haproxy import slots

    opts = config.options("haproxy")
    first = desired({"web": ["a", "b", "c"], "api": ["x"]}, listeners=[("public", "web")])
    live = render(slots.assign(first, None, 4)[0], "haproxy", opts)
    for after in (desired({"web": ["a", "c", "d"], "api": ["x"]}, {"c": "drain"}, listeners=[("public", "web")]),
                  desired({"web": ["a"], "api": []}, listeners=[("public", "web")]),
                  desired({"web": [f"m{i}" for i in range(9)], "api": ["x"]}, listeners=[("public", "web")])):
        candidate = render(slots.assign(after, live, 4)[0], "haproxy", opts)
        assert haproxy_cfg.served_after(live, haproxy_cfg.served(live), candidate) == haproxy_cfg.served(candidate)
        # servers named after members (the default): they come and go as lines
        named_live, named = render(first, "haproxy", opts), render(after, "haproxy", opts)
        assert haproxy_cfg.served_after(named_live, haproxy_cfg.served(named_live), named) == haproxy_cfg.served(named)


@pytest.mark.parametrize("seed", range(30))
def test_unchanged_pools_shared_between_models_give_what_fresh_copies_give(seed):
    """A watch round keeps the very objects of the pools that did not change, and the guard
    and the log lines skip those: the answers equal those for models sharing nothing."""
    import copy
    import random

    from lbctl import model

    rng = random.Random(seed)
    pools = {f"p{i}": [f"m{k}" for k in range(rng.randint(1, 5))] for i in range(8)}
    states = {}
    before = desired(pools)
    for name in rng.sample(sorted(pools), rng.randint(0, 4)):
        pools[name] = rng.sample(pools[name], rng.randint(0, len(pools[name]))) + ["new"] * rng.randint(0, 1)
        states.update({m: rng.choice(["enabled", "drain", "maint", "backup"]) for m in pools[name]})
    rebuilt = {p.name: p for p in desired(pools, states).pools}
    shared = model.Desired(before.listeners, tuple(  # unchanged pools: the same objects as in ``before``
        old if old == rebuilt.get(old.name) else rebuilt[old.name] for old in before.pools if old.name in rebuilt))
    fresh = copy.deepcopy(shared)
    for policy in (STRICT, guard.Policy(max_removal=0.2, min_members=2), guard.Policy(allow=frozenset({"p1"}))):
        kept = guard.served(before)
        after = guard.Served(kept.listeners, {name: kept.pools[name] if old is new else frozenset(
            m.name for m in new.members if m.state in guard.SERVING)
            for old, new in zip(before.pools, shared.pools) for name in [new.name]})
        assert guard.refusals(kept, after, policy) == refusals(before, fresh, policy)
    assert guard.member_changes(before, shared) == guard.member_changes(before, fresh)
    for other in (shared.pools[1:], shared.pools[:-1] + (model.Pool("zz"),)):  # a pool gone; one gone, one new
        after = model.Desired(shared.listeners, other)
        lines = guard.member_changes(before, after)
        assert lines == guard.member_changes(before, copy.deepcopy(after)) and lines[-1].endswith("pool removed")
