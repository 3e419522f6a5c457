"""The keepalived kind's fast paths, without keepalived: the load balancer's process
it tracks, the VIPs every node keeps on lo, and whether a peer is
ready for a planned switchover (a running pair: tests/integration/test_keepalived_pair.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lbctl import config
from lbctl.errors import ConfigError, LbctlError, ValidationError
from lbctl.render import render
from lbctl.targets.keepalived import ctl, pair
from lbctl.targets.keepalived.target import KeepalivedTarget
from tests.unit.test_keepalived import desired, settings

EDGE = {"haproxy": {"kind": "haproxy", "config": "/etc/haproxy/haproxy.cfg", "binary": "/usr/sbin/haproxy",
                    "master_socket": "/run/haproxy-master.sock"},
        "nginx": {"kind": "nginx", "config": "/etc/nginx/nginx.conf"}}


def pair_of(kind: str = "haproxy", state_dir: Path | None = None, **over) -> KeepalivedTarget:
    raw = {"targets": {"edge": EDGE[kind], "vip": settings(**{"check_target": "edge", **over})}}
    if state_dir is not None:
        raw["state_dir"] = str(state_dir)
    cfg = config.from_raw(raw, Path("/etc/lbctl"))
    t = cfg.targets["vip"]
    vip = KeepalivedTarget(t, lambda d, **kw: render(d, "keepalived", t.options, None, **kw))
    vip.siblings = {"edge": cfg.targets["edge"]}
    return vip


def candidate(vip: KeepalivedTarget) -> str:
    return vip.plan(desired(("web", "198.18.1.10"))).candidate


def test_haproxy_is_tracked_by_its_own_configuration_file_in_its_command_line():
    text = candidate(pair_of())
    assert 'process "/usr/sbin/haproxy" "-Ws" "-f" "/etc/haproxy/haproxy.cfg"\n    param_match partial' in text
    assert "    quorum 1\n    weight 0\n" in text  # its exit: FAULT, the VIPs go at once
    assert "track_process {\n        lbctl_lb\n    }" in text.split("vrrp_instance vip")[1]


def test_nginx_goes_by_name_and_track_process_can_be_set_or_turned_off():
    text = candidate(pair_of("nginx"))
    assert 'process "nginx"\n    quorum 1' in text and "param_match" not in text
    text = candidate(pair_of(track_process="/usr/sbin/nginx -c '/etc/my nginx/nginx.conf'"))
    assert 'process "/usr/sbin/nginx" "-c" "/etc/my nginx/nginx.conf"\n    param_match partial' in text
    text = candidate(pair_of(track_process=False))
    assert "vrrp_track_process" not in text and "track_process {" not in text


@pytest.mark.parametrize("value, message", [
    ('haproxy -f "/etc/a', "track_process: cannot be split into words"),
    ("haproxy -f /etc/a\\\\b", "track_process: must be words without double quotes"),
    ("", "track_process: must be words without"),
    (5, "track_process: must be the first words of the load balancer's command line, or false"),
])
def test_a_bad_track_process_is_one_line_naming_the_key(value, message):
    with pytest.raises(ConfigError, match=f"targets.vip.{message}") as err:
        pair_of(track_process=value)
    assert "\n" not in str(err.value)


def test_every_vip_is_also_kept_on_lo():
    raw = {"groups": {"front": {"router_id": 60, "listeners": ["web"]}, "rest": {"router_id": 61}}}
    text = render(desired(("web", "198.18.1.10"), ("api", "198.18.1.11")), "keepalived",
                  pair_of(**raw).settings.options, None, cache={"target": "vip"})
    assert "static_ipaddress {\n    198.18.1.10/32 dev lo\n    198.18.1.11/32 dev lo\n}" in text


def test_no_vip_is_kept_on_lo_where_the_node_would_answer_arp_for_it(tmp_path, monkeypatch):
    for name, value in (("all", "0"), ("eth0", "0")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "arp_ignore").write_text(value)
    assert not ctl.arp_quiet("eth0", tmp_path)
    monkeypatch.setattr(ctl.arp_quiet, "__defaults__", (tmp_path,))
    vip = pair_of()
    with pytest.raises(ValidationError, match=r"^vip: net.ipv4.conf.all.arp_ignore \(and .eth0\) is 0: this node "
                                              "would answer ARP for the VIPs it keeps on lo; set it to 1"):
        vip.check(vip.plan(desired(("web", "198.18.1.10"))))
    (tmp_path / "all" / "arp_ignore").write_text("1\n")
    assert ctl.arp_quiet("eth0", tmp_path) and not ctl.arp_quiet("eth1", tmp_path / "none")


def test_a_peer_that_is_not_ready_is_named_before_anything_moves(tmp_path):
    vip = pair_of()
    mine = vip.configs()
    assert pair.unready(vip, {"lb2": {"configs": mine, "fit": True, "drained": False}}) == []
    why = pair.unready(vip, {"lb2": {"error": "timed out"}, "lb3": {"drained": True}, "lb4": {"fit": False},
                             "lb5": {"configs": {"edge": "other"}}, "lb6": {"running": False}})
    assert why == ["peer lb2 is unreachable (timed out)", "peer lb3 is drained itself",
                   "peer lb4's load balancer fails its check", "peer lb5 serves another edge configuration",
                   "peer lb6's keepalived is not running"]


def test_fit_is_the_last_check_if_it_is_recent(tmp_path):
    vip = pair_of(state_dir=tmp_path)
    assert pair.fit(vip) is False  # never checked
    check = tmp_path / "edge" / "check.json"
    check.parent.mkdir()
    check.write_text(json.dumps({"fit": True, "problems": [], "checked": time.time()}))
    assert pair.fit(vip) is True
    check.write_text(json.dumps({"fit": True, "problems": [], "checked": time.time() - 60}))
    assert pair.fit(vip) is False  # older than 1s x (2 + 1) + 5s: keepalived no longer runs it
    check.write_text(json.dumps({"fit": False, "problems": ["x"], "checked": time.time()}))
    assert pair.fit(vip) is False
    assert pair.fit(pair_of(state_dir=tmp_path, check_target=None)) is None


def test_drain_refuses_without_keepalived(tmp_path):
    vip = pair_of(state_dir=tmp_path, pid_file=str(tmp_path / "none.pid"))
    with pytest.raises(LbctlError, match="keepalived is not running"):
        pair.drain(vip, 1)
