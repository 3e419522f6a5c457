"""The keepalived kind without keepalived: its settings, what it renders from the
listeners, what the guard reads back, the notify hook's arguments, the pair's
config comparison (the real keepalived -t and a running pair: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import config, inventory
from lbctl.errors import ConfigError
from lbctl.render import render
from lbctl.targets.keepalived import pair
from lbctl.targets.keepalived.target import KeepalivedTarget, served
from tests.helpers import minimal_raw


def settings(**over) -> dict:
    body = {"kind": "keepalived", "config": "/etc/keepalived/keepalived.conf", "node": "lb1",
            "nodes": {"lb1": {"address": "198.18.0.11", "priority": 150},
                      "lb2": {"address": "198.18.0.12", "priority": 100}}}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


def target(**over) -> config.Target:
    return config.from_raw({"targets": {"vip": settings(**over)}}, Path("/etc/lbctl")).targets["vip"]


def desired(*listeners: tuple[str, str]):
    raw = minimal_raw()
    raw["listeners"] = {name: {"address": address, "port": 80 + i, "default_pool": "app"}
                        for i, (name, address) in enumerate(listeners)}
    return inventory.from_raw(raw)


def rendered(t: config.Target, model=None, **local) -> str:
    return render(model or desired(("web", "198.18.1.10")), "keepalived", t.options, None,
                  cache={"target": "vip", **local})


def test_one_node_of_a_pair_renders_its_own_side():
    text = rendered(target(check_target="edge"), auth_pass="pw")
    assert "priority 150" in text and "unicast_src_ip 198.18.0.11" in text
    assert "unicast_peer {\n        198.18.0.12\n    }" in text
    assert "198.18.1.10/32 dev eth0" in text and "virtual_router_id 51" in text
    assert 'script "/usr/local/bin/lbctl check -c /etc/lbctl/lbctl.yml -t edge"' in text
    assert "weight -60" in text  # the spread (50) and 10 more: a failed check moves the VIP
    assert 'vrrp-notify -c /etc/lbctl/lbctl.yml -t vip"' in text and 'auth_pass "pw"' in text
    assert "nopreempt" not in text and "state BACKUP" in text
    other = rendered(target(node="lb2"))
    assert "priority 100" in other and "unicast_src_ip 198.18.0.12" in other and "track_script" not in other


def test_nopreempt_fails_over_through_fault_and_vrrpv3_takes_short_adverts():
    text = rendered(target(nopreempt=True, check_target="edge", vrrp_version=3, advert_int="100ms"))
    assert "nopreempt" in text and "weight 0" in text and "advert_int 0.1" in text and "version 3" in text


def test_groups_make_one_instance_each_and_wildcards_are_no_vip():
    model = desired(("web", "198.18.1.10"), ("api", "198.18.1.11"), ("any", "0.0.0.0"))
    t = target(groups={"front": {"router_id": 60, "listeners": ["web"]}, "rest": {"router_id": 61}})
    text = rendered(t, model)
    front, rest = text.split("vrrp_instance front")[1].split("vrrp_instance rest")
    assert "198.18.1.10/32" in front and "198.18.1.11" not in front and "virtual_router_id 60" in front
    assert "198.18.1.11/32" in rest and "0.0.0.0" not in rest
    assert served(text).listeners == frozenset({"web", "api"})


@pytest.mark.parametrize("model, message", [
    (desired(("any", "0.0.0.0")), "no listener has an address of its own"),
    (desired(("v6", "2001:db8::1")), "listeners.v6.address: 2001:db8::1 is IPv6, the nodes' addresses IPv4"),
    (desired(("lo", "127.0.0.1")), "listeners.lo.address: 127.0.0.1 cannot be a virtual IP"),
])
def test_listeners_that_cannot_be_virtual_ips_are_refused(model, message):
    with pytest.raises(ConfigError, match=message):
        rendered(target(), model)


def test_a_group_naming_an_unknown_listener_is_refused():
    with pytest.raises(ConfigError, match=r"^groups.g.listeners: no listener 'nope'"):
        rendered(target(groups={"g": {"router_id": 9, "listeners": ["nope"]}}))


@pytest.mark.parametrize("over, message", [
    ({"node": "lb3"}, r"targets.vip.node: must be one of nodes \(lb1, lb2\)"),
    ({"nodes": {"lb1": {"address": "198.18.0.11", "priority": 150}}}, "targets.vip.nodes: must name at least two"),
    ({"nodes": {"lb1": {"address": "198.18.0.11", "priority": 150}, "lb2": {"address": "198.18.0.11",
                                                                           "priority": 1}}},
     "must give each node its own address"),
    ({"nodes": {"lb1": {"address": "x y", "priority": 150}, "lb2": {"address": "198.18.0.1", "priority": 1}}},
     "targets.vip.nodes.lb1.address: must be an IPv4 or IPv6 address"),
    ({"advert_int": "500ms"}, "advert_int: must be whole seconds with vrrp_version 2"),
    ({"vrrp_version": 3, "auth_pass_env": "PW"}, "VRRPv3 has no authentication"),
    ({"check_weight": -20}, r"check_weight: must lower a node below its peers: more than 50"),
    ({"nopreempt": True, "check_weight": -60}, "check_weight: must be 0 with nopreempt"),
    ({"groups": {"a": {"router_id": 5}, "b": {"router_id": 5}}}, "must give each group its own router_id"),
    ({"check_interval": "500ms"}, "targets.vip.check_interval: must be whole seconds"),
    ({"preempt_delay": "20m"}, "targets.vip.preempt_delay: must be at most 1000s"),
    ({"nopreempt": True, "preempt_delay": "5s"}, "preempt_delay: means nothing with nopreempt"),
    ({"interface": "eth0; x"}, "targets.vip.interface: must be an interface name"),
    ({"lbctl": "/usr/bin/lbctl; rm"}, "targets.vip.lbctl: must be"),
    ({"unknown": 1}, "unknown"),
    ({"forward_orphans": "1s", "nodes": {"lb1": {"address": "2001:db8::1", "priority": 150},
                                         "lb2": {"address": "2001:db8::2", "priority": 100}}},
     "targets.vip.forward_orphans: needs a pair: two nodes with IPv4 addresses"),
    ({"forward_orphans": "1s", "nodes": {"lb1": {"address": "198.18.0.11", "priority": 150},
                                         "lb2": {"address": "198.18.0.12", "priority": 100},
                                         "lb3": {"address": "198.18.0.13", "priority": 50}}},
     "targets.vip.forward_orphans: needs a pair"),
    ({"forward_orphans": "soon"}, "targets.vip.forward_orphans: must be a duration"),
])
def test_bad_settings_are_one_line_naming_the_key(over, message):
    with pytest.raises(ConfigError, match=message) as err:
        target(**over)
    assert "\n" not in str(err.value)


def test_the_vrrp_password_is_read_from_its_secret_and_checked(tmp_path, monkeypatch):
    t = target(auth_pass_env="VRRP_PW")
    vip = KeepalivedTarget(t, lambda desired, **kw: render(desired, "keepalived", t.options, None, **kw))
    monkeypatch.setenv("VRRP_PW", "s3cret")
    assert 'auth_pass "s3cret"' in vip.plan(desired(("web", "198.18.1.10"))).candidate
    monkeypatch.setenv("VRRP_PW", 'a"b')
    with pytest.raises(ConfigError, match="targets.vip.auth_pass: must be 1 to 8"):
        vip.plan(desired(("web", "198.18.1.10")))


def test_the_notify_hook_takes_keepalived_s_four_arguments(tmp_path):
    t = KeepalivedTarget(target().__class__(**{**target().__dict__, "state_dir": tmp_path}), lambda d, **kw: "")
    entry = pair.notified(t, ("INSTANCE", "vip", "MASTER", "150"))
    assert entry["result"] == "MASTER" and entry["node"] == "lb1" and entry["action"] == "vrrp"
    assert pair.ctl.read_states(tmp_path)["vip"]["state"] == "MASTER"
    for bad in (("INSTANCE", "vip", "BOSS", "1"), ("vip", "MASTER"), ("X", "vip", "MASTER", "1")):
        with pytest.raises(ConfigError, match="vrrp-notify: expected INSTANCE"):
            pair.notified(t, bad)


def test_configs_that_differ_from_a_peer_s_are_named():
    mine = {"edge": "aa", "web": "bb"}
    peers = {"lb2": {"configs": {"edge": "aa", "web": "cc"}}, "lb3": {"error": "timed out"}}
    assert pair.mismatched(mine, peers) == ["web"]
    assert pair.mismatched(mine, {"lb2": {"configs": mine}}) == []


def test_check_target_must_be_a_file_target_of_the_config(tmp_path):
    t = target(check_target="edgee")
    vip = KeepalivedTarget(t, lambda desired, **kw: render(desired, "keepalived", t.options, None, **kw))
    vip.siblings = {"edge": config.from_raw({"targets": {"edge": {"kind": "haproxy", "config": str(tmp_path / "haproxy.cfg")}}}, tmp_path).targets["edge"]}
    with pytest.raises(ConfigError, match=r"targets.vip.check_target: no file target 'edgee' in this lbctl.yml "
                                          r"\(have: edge\)"):
        vip.plan(desired(("web", "198.18.1.10")))


def test_without_a_config_there_is_no_pair_to_render():
    with pytest.raises(ConfigError, match="a keepalived target's nodes come from lbctl.yml"):
        render(desired(("web", "198.18.1.10")), "keepalived", config.options("keepalived"), None)
