"""Slot layout and the runtime-capable diff, on rendered text.  Pure."""

from lbctl import config, inventory
from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.targets.haproxy import slots
from lbctl.render import render


def rendered(members, live=None, headroom=2, **pool):
    raw = {"listeners": {"w": {"port": 8080, "default_pool": "app"}},
           "pools": {"app": {"members": [{"name": n, "address": a, "port": 80, **extra} for n, a, extra in members], **pool}}}
    return render(slots.assign(inventory.from_raw(raw), live, headroom)[0], "haproxy", config.options("haproxy"))


def server_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip().startswith("server ")]


A, B, C = ("a", "10.0.0.1", {}), ("b", "10.0.0.2", {}), ("c", "10.0.0.3", {})


def test_members_keep_their_slots_and_new_ones_fill_free_slots():
    first = rendered([A, B])
    assert server_lines(first) == ["server slot1 10.0.0.1:80 weight 1", "server slot2 10.0.0.2:80 weight 1",
                                   "server slot3 127.0.0.1:9 weight 1 disabled",
                                   "server slot4 127.0.0.1:9 weight 1 disabled"]
    second = rendered([B, C], first)
    assert server_lines(second)[:3] == ["server slot1 127.0.0.1:9 weight 1 disabled",
                                        "server slot2 10.0.0.2:80 weight 1", "server slot3 10.0.0.3:80 weight 1"]
    changes = haproxy_cfg.runtime_changes(first, second)
    assert [haproxy_cfg.commands(c) for c in changes] == [
        ["set server app/slot1 state maint"],
        ["set server app/slot3 addr 10.0.0.3 port 80", "set server app/slot3 weight 1", "set server app/slot3 state ready"],
    ]


def test_weight_drain_and_maint_are_runtime_changes():
    first = rendered([A, B])
    second = rendered([("a", "10.0.0.1", {"weight": 9}), ("b", "10.0.0.2", {"state": "drain"})], first)
    assert [haproxy_cfg.commands(c) for c in haproxy_cfg.runtime_changes(first, second)] == [
        ["set server app/slot1 weight 9", "set server app/slot1 state ready"],
        ["set server app/slot2 weight 0", "set server app/slot2 state ready"]]
    third = rendered([("a", "10.0.0.1", {"weight": 9, "state": "maint"}), ("b", "10.0.0.2", {"state": "drain"})], second)
    assert [haproxy_cfg.commands(c) for c in haproxy_cfg.runtime_changes(second, third)] == [
        ["set server app/slot1 state maint"]]


def test_structural_changes_need_a_reload():
    first = rendered([A, B])
    assert haproxy_cfg.runtime_changes(first, rendered([A, B, C], first, headroom=0)) is not None  # a free slot
    assert haproxy_cfg.runtime_changes(first, rendered([A, B], first, balance="leastconn")) is None
    assert haproxy_cfg.runtime_changes(first, rendered([A, ("b", "10.0.0.2", {"state": "backup"})], first)) is None
    full = rendered([A, B, C, ("d", "10.0.0.4", {})], first)  # four members fit the four slots
    grown = rendered([A, B, C, ("d", "10.0.0.4", {}), ("e", "10.0.0.5", {})], full)
    assert len(server_lines(grown)) == 7 and haproxy_cfg.runtime_changes(full, grown) is None
    assert haproxy_cfg.runtime_changes(None, first) is None


def test_a_live_server_is_never_readdressed():
    old = "backend app\n    server s1 10.0.0.1:80 weight 1\n"
    assert haproxy_cfg.runtime_changes(old, "backend app\n    server s1 10.0.0.9:80 weight 1\n") is None
    assert haproxy_cfg.runtime_changes(old.replace("weight 1", "weight 1 disabled"),
                                       "backend app\n    server s1 10.0.0.9:80 weight 1\n") is not None


def test_slots_in_use():
    text = rendered([A, B])
    assert slots.in_use(text) == {"app": {"used": {"slot1": "10.0.0.1:80", "slot2": "10.0.0.2:80"},
                                          "free": ["slot3", "slot4"]}}


def test_unchanged_pools_keep_their_layout_without_being_laid_out_again():
    raw = {"pools": {"a": {"members": [{"name": "x", "address": "10.0.0.1", "port": 80}]},
                     "b": {"members": [{"name": "y", "address": "10.0.0.2", "port": 80}]}}}
    first = inventory.from_raw(raw)
    slotted, layout = slots.assign(first, None, 2)
    text = render(slotted, "haproxy", config.options("haproxy"))
    raw["pools"]["b"]["members"].append({"name": "z", "address": "10.0.0.3", "port": 80})
    second = inventory.from_raw(raw)
    second = type(second)(second.listeners, (first.pools[0], second.pools[1]))  # pool a: the same object
    again, _ = slots.assign(second, text, 2, layout)
    assert again.pools[0] is slotted.pools[0]
    assert [m.address for m in again.pools[1].members] == ["10.0.0.2", "10.0.0.3", "127.0.0.1"]


def named(members, **pool):
    """Servers named after members (``slots: 0``)."""
    raw = {"listeners": {"w": {"port": 8080, "default_pool": "app"}},
           "pools": {"app": {"members": [{"name": n, "address": a, "port": 80, **extra} for n, a, extra in members],
                             **pool}}}
    return render(inventory.from_raw(raw), "haproxy", config.options("haproxy"))


def test_named_members_come_and_go_as_dynamic_servers():
    first, second = named([A, B]), named([B, C])
    assert haproxy_cfg.runtime_changes(first, second) is None  # without dynamic servers: a reload
    changes = haproxy_cfg.runtime_changes(first, second, dynamic=True)
    assert [haproxy_cfg.commands(c) for c in changes] == [
        ["set server app/a state maint", "del server app/a"],
        ["add server app/c 10.0.0.3:80 weight 1 check inter 2s rise 2 fall 3", "enable health app/c",
         "set server app/c state ready"]]
    assert sorted(c.action for c in haproxy_cfg.runtime_changes(second, first, dynamic=True)) == ["add", "del"]


def test_dynamic_servers_need_a_dynamic_algorithm_and_no_cookie():
    for pool in ({"balance": "source"}, {"sticky_cookie": "SRV"}):
        assert haproxy_cfg.runtime_changes(named([A], **pool), named([A, B], **pool), dynamic=True) is None
    # a removal needs neither
    assert haproxy_cfg.runtime_changes(named([A, B], balance="source"), named([A], balance="source"), dynamic=True)


def test_only_server_values_and_rendered_keywords_skip_the_check():
    first = named([A, B])
    delta, _ = haproxy_cfg.server_delta(first, named([A, ("b", "10.0.0.2", {"weight": 5}), C]), dynamic=True)
    assert [(a and a.name, b and b.name) for a, b in delta] == [("b", "b"), (None, "c")]
    assert all(haproxy_cfg.valid(after, added=before is None) for before, after in delta)
    assert haproxy_cfg.server_delta(first, first.replace("balance roundrobin", "balance leastconn"), True) is None
    bad = haproxy_cfg.Server("app", "x", "10.0.0.9", 80, 1, False, ("cookie", "x"))
    assert not haproxy_cfg.valid(bad, added=True) and haproxy_cfg.valid(bad)
    assert not haproxy_cfg.valid(haproxy_cfg.Server("app", "x", "db.example", 80, 1, False, ()))
