"""Consul answers → members and pool settings: everything from Consul is untrusted."""

import pytest

from lbctl import inventory
from lbctl.discovery import consul_model as cm
from lbctl.discovery import merge


def entry(sid="web-1", address="10.0.0.5", port=8080, node_address="10.0.0.1", node="node-a", checks=("passing",),
          tags=("v1",), meta=None, weights=None):
    return {
        "Node": {"Node": node, "Address": node_address},
        "Service": {"ID": sid, "Service": "web", "Address": address, "Port": port, "Tags": list(tags),
                    "Meta": meta, "Weights": weights or {"Passing": 1, "Warning": 1}},
        "Checks": [{"CheckID": f"c{i}", "Status": s} for i, s in enumerate(checks)],
    }


def test_status_aggregation():
    assert cm.status([{"CheckID": "a", "Status": "passing"}, {"CheckID": "b", "Status": "warning"}]) == "warning"
    assert cm.status([{"CheckID": "a", "Status": "warning"}, {"CheckID": "b", "Status": "critical"}]) == "critical"
    assert cm.status([{"CheckID": "_service_maintenance:web-1", "Status": "critical"}]) == "maintenance"
    assert cm.status([{"CheckID": "_node_maintenance", "Status": "critical"}]) == "maintenance"
    assert cm.status([{"CheckID": "x", "Status": "bogus"}]) == "critical"
    assert cm.status([]) == "passing"


def test_members_map_address_weight_and_state():
    members, problems = cm.members("web", [
        entry("web-1"),
        entry("web-2", address="", weights={"Passing": 10, "Warning": 2}),
        entry("web-3", checks=("passing", "warning"), weights={"Passing": 10, "Warning": 2}),
        entry("web-4", checks=("critical",)),
    ], cm.Policy())
    assert problems == []
    by = {m["name"]: m for m in members}
    assert by["web-1"]["address"] == "10.0.0.5" and by["web-2"]["address"] == "10.0.0.1"  # node fallback
    assert by["web-2"]["weight"] == 10 and by["web-3"]["weight"] == 2
    assert [by[n]["state"] for n in ("web-1", "web-2", "web-3", "web-4")] == ["enabled", "enabled", "maint", "maint"]
    warning_ok, _ = cm.members("web", [entry("web-3", checks=("warning",))], cm.Policy(include_warning=True))
    assert warning_ok[0]["state"] == "enabled"


def test_hostile_instances_are_left_out_and_reported():
    members, problems = cm.members("web", [
        entry("web-1"),
        entry("evil\nserver x 1.2.3.4:80"),
        entry("web-3", address="10.0.0.7;"),
        entry("web-4", port=70000),
        entry("web-5", weights={"Passing": 1000, "Warning": 1}),
        "not an entry",
    ], cm.Policy())
    assert [m["name"] for m in members] == ["web-1"]
    assert len(problems) == 5 and all("\n" not in p and p.startswith("consul service 'web': instance left out:") for p in problems)
    assert any("instance web-3: Service.Address: must be an IPv4" in p for p in problems)


def test_bad_tags_and_meta_are_dropped_not_fatal():
    members, problems = cm.members("web", [entry(tags=("ok", "bad tag;"), meta={"zone": "a", "x": "{evil}", "bad key": "v"})],
                                   cm.Policy())
    assert members[0]["tags"] == ["ok"] and members[0]["meta"] == {"zone": "a"}
    assert len(problems) == 3


def test_colliding_ids_on_two_nodes_get_the_node_name():
    members, _ = cm.members("web", [entry("web", node="n1", address="10.0.0.1"), entry("web", node="n2", address="10.0.0.2")],
                            cm.Policy())
    assert [m["name"] for m in members] == ["web.n1", "web.n2"]


def test_meta_options_become_pool_settings_and_bad_ones_are_ignored():
    parts = inventory.parts({"pools": {"web": {"balance": "leastconn", "health": {"type": "http", "path": "/ok"}}}})
    meta = {"lb-balance": "source", "lb-health-path": "/healthz", "lb-maxconn": "50"}
    pool, problems = merge.service_pool(parts, "web", [entry(meta=meta)], cm.Policy())
    assert (pool.balance, pool.health.path, pool.health.type, pool.maxconn) == ("source", "/healthz", "http", 50)
    assert problems == []
    pool, problems = merge.service_pool(parts, "web", [entry(meta={"lb-balance": "fastest"})], cm.Policy())
    assert pool.balance == "leastconn" and pool.members[0].name == "web-1"
    assert problems[0].startswith("consul service web: lb-* meta options ignored: consul service web.balance: must be one of")
    pool, problems = merge.service_pool(parts, "web", [entry(meta={"lb-maxconn": "lots"})], cm.Policy())
    assert pool.maxconn is None and "Meta.lb-maxconn 'lots' is not a number" in problems[0]


def test_hostile_service_names_are_left_out():
    pool, problems = merge.service_pool(inventory.parts({}), "web\nfrontend x", [entry()], cm.Policy())
    assert pool is None and problems[0].startswith("consul service left out: service name: must be a name")


def test_listeners_keep_their_pools_while_discovery_has_none():
    parts = inventory.parts({"listeners": {"www": {"port": 8080, "default_pool": "web"}}})
    desired, problems = merge.from_entries(parts, {}, cm.Policy())
    assert [p.name for p in desired.pools] == ["web"] and desired.pools[0].members == ()


def test_instance_meta_lb_state_drains_or_backs_up_a_serving_instance():
    members, problems = cm.members("web", [entry("web-1", meta={"lb-state": "drain"}),
                                           entry("web-2", meta={"lb-state": "backup"}, checks=("critical",)),
                                           entry("web-3", meta={"lb-state": "off"})], cm.Policy())
    assert [m["state"] for m in members] == ["drain", "maint", "enabled"]
    assert problems == ["instance web-3: Meta.lb-state 'off' ignored: must be one of drain, backup"]


@pytest.mark.parametrize("seed", range(40))
def test_replacing_changed_pools_in_the_last_model_gives_what_a_whole_build_gives(seed):
    """A watch round puts its rebuilt pools in place of the old ones (no sort of every
    pool): for random inventories, listeners and services, the same model as
    ``merge.desired``, and the same refusal of a sticky cookie behind a tcp listener."""
    import random

    from lbctl.errors import ConfigError

    rng = random.Random(seed)
    names = [f"s{i}" for i in range(8)]
    raw = {"pools": {n: {"members": [{"name": "a", "address": "10.0.0.1", "port": 80}]} for n in names[:3]},
           "listeners": {"web": {"address": "127.0.0.1", "port": 8080, "default_pool": rng.choice(names)},
                         "db": {"address": "127.0.0.1", "port": 5432, "mode": "tcp", "default_pool": names[-1]}}}
    parts = inventory.parts(raw)
    static = merge.static_pools(parts)

    def service(name):
        members = [{"name": f"m{k}", "address": f"10.1.0.{k}", "port": 80, "weight": rng.randint(1, 9)}
                   for k in range(rng.randint(0, 3))]
        sticky = {"sticky_cookie": "SRV"} if rng.random() < 0.1 else {}
        return parts.pool(name, {"members": members, **sticky})

    services = {}
    for n in rng.sample(names, 5):
        try:
            services[n] = service(n)
        except ConfigError:
            pass
    try:
        before = merge.desired(parts, static, services)
    except ConfigError:
        return
    where = merge.positions(before)
    for _ in range(10):
        changed = {n: service(n) for n in rng.sample(sorted(services), min(2, len(services)))}
        try:
            whole = merge.desired(parts, static, {**services, **changed})
        except ConfigError as exc:
            with pytest.raises(ConfigError, match=str(exc).split(": ", 1)[0]):
                merge.replace_pools(before, where, changed)
            continue
        assert merge.replace_pools(before, where, changed) == whole
        services.update(changed)
        before = whole
    assert merge.replace_pools(before, where, {"new": parts.pool("new", {})}) is None
