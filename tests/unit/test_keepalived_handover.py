"""Kept-alive connections at a planned switchover, without keepalived or a network:
the connections /proc lists, the VIPs of a rendered keepalived.conf, who may ask for a
handover, and what drain-node says when the load balancer cannot close connections
(a running pair: tests/integration/test_keepalived_pair.py; HAProxy's drain_map:
tests/integration/test_haproxy_drain_map.py)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from lbctl import config, kinds
from lbctl.errors import ConfigError
from lbctl.render import render
from lbctl.targets import procfs
from lbctl.targets.keepalived import ctl, handover
from tests.unit.test_keepalived import desired
from tests.unit.test_keepalived_track import pair_of


def word(ip: str) -> str:
    """An IPv4 address as /proc/net/tcp prints it (the 32-bit word in host order)."""
    return "%08X" % struct.unpack("=I", socket.inet_aton(ip))[0]


def test_established_connections_to_the_vips_are_read_from_proc(tmp_path):
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    rows = [(word("198.18.1.10"), 8080, word("198.18.0.50"), 40000, "01"),  # a client of the VIP
            (word("198.18.1.10"), 8080, word("198.18.0.51"), 40001, "08"),  # CLOSE_WAIT: the client has gone
            (word("127.0.0.1"), 50000, word("127.0.0.1"), 9000, "01"),  # to a backend
            (word("0.0.0.0"), 8080, word("0.0.0.0"), 0, "0A")]  # a listener
    (tmp_path / "tcp").write_text(head + "".join(
        f"   {i}: {la}:{lp:04X} {ra}:{rp:04X} {st} 00000000:00000000 00:00000000 00000000 0 0 1 1\n"
        for i, (la, lp, ra, rp, st) in enumerate(rows)))
    assert procfs.established({"198.18.1.10"}, tmp_path) == {("198.18.1.10:8080", "198.18.0.50:40000")}
    assert procfs.established({"198.18.1.11"}, tmp_path) == set()


def test_established_sees_this_namespace_s_own_connections():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            port = server.getsockname()[1]
            found = procfs.established({"127.0.0.1"})
            assert (f"127.0.0.1:{port}", f"127.0.0.1:{client.getsockname()[1]}") in found


def test_the_vips_are_those_of_the_rendered_static_ipaddress_block():
    vip = pair_of()
    text = render(desired(("web", "198.18.1.10"), ("api", "198.18.1.11")), "keepalived", vip.settings.options,
                  None, cache={"target": "vip"})
    assert ctl.vips(text) == {"198.18.1.10", "198.18.1.11"}
    assert ctl.vips("") == set()


def test_only_a_peer_s_address_may_ask_for_a_handover():
    vip = pair_of()
    status, report = handover.hand_over(vip, "198.18.0.50")
    assert status == 403 and report == {"error": "198.18.0.50 is not a peer of node lb1"}
    assert handover.hand_over(vip, "198.18.0.12")[0] == 200  # lb2's address (no check target reachable here)


def test_a_load_balancer_without_a_runtime_switch_is_named_and_nothing_waits(tmp_path):
    vip = pair_of("nginx", state_dir=tmp_path)
    assert handover.close_connections(vip).startswith("no check_target")  # no Session: no target to reach
    vip.make_target = lambda t: kinds.get(t.kind).target()(t, lambda d, **kw: "")
    assert handover.close_connections(vip) == ("edge (nginx) cannot close kept-alive connections at runtime: "
                                               "not closed first")
    assert handover.reopen(vip) == ""


def test_drain_time_and_drain_map_are_checked_like_their_kinds():
    assert pair_of(drain_time="0s").settings.options.drain_time_ms == 0
    assert pair_of().settings.options.drain_time_ms == 15_000
    with pytest.raises(ConfigError, match=r"targets.vip.drain_time"):
        pair_of(drain_time="soon")
    raw = {"targets": {"edge": {"kind": "haproxy", "config": "/etc/haproxy/haproxy.cfg", "drain_map": "edge.map"}}}
    assert config.from_raw(raw, Path("/etc/lbctl")).targets["edge"].options.drain_map == "/etc/lbctl/edge.map"
    raw["targets"]["edge"]["drain_map"] = "/etc/my map"
    with pytest.raises(ConfigError, match=r"targets.edge.drain_map"):
        config.from_raw(raw, Path("/etc/lbctl"))
