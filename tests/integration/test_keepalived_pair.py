"""A keepalived pair in network namespaces (lbctl_testkit.support.netns): each node
runs HAProxy, keepalived and lbctl, rendered and applied by lbctl; a client in a
third namespace sends bounded traffic to the virtual IP while the master loses its
link, its load balancer, or is drained.  Needs root: without it these fail, not skip.
Gaps are recorded (``$LBCTL_VRRP_FIGURES``), never asserted: the machine may be loaded."""

from __future__ import annotations

import os
import sys

import pytest

from lbctl_testkit.support import requires_haproxy, wait_until
from lbctl_testkit.support.netns import ADDRESSES, Lab
from lbctl_testkit.support.pair import TAKEOVER, WATCH_PORT, Client, Node, record, settle, start_pair
from lbctl_testkit.support.netns import stop
from lbctl_testkit.support.procs import requires_keepalived

pytestmark = [*requires_haproxy, *requires_keepalived]


@pytest.fixture
def lab(tmp_path):
    assert os.geteuid() == 0, "the keepalived pair tests need root to make network namespaces"
    with Lab(tmp_path) as lab_:
        yield lab_


def served_by(results: list[list]) -> list[str]:
    """The nodes that answered, in order, each once per run of answers."""
    out = []
    for _, _, body, *_ in results:
        if body is not None and (not out or out[-1] != body):
            out.append(body)
    return out


def test_the_pair_elects_the_higher_priority_and_records_it(lab):
    a, b = start_pair(lab)
    # the state is kept, then the audit log written: wait for it
    wait_until(lambda: [e["result"] for e in a.audit() if e.get("action") == "vrrp"][-1:] == ["MASTER"], TAKEOVER,
               "a's audit log to say MASTER")
    entries = [e for e in a.audit() if e.get("action") == "vrrp"]
    assert entries[-1]["node"] == "a"
    assert a.cli("check", "-t", "edge").returncode == 0
    status = a.cli("status", "-t", "vip").stdout
    assert "node a: vip MASTER" in status, status
    client = Client(lab, "steady", seconds=3)
    results = client.results(stop=False)
    assert results and served_by(results) == ["a"] and all(r[2] for r in results)


VRRPV3 = {"vrrp_version": 3, "advert_int": "100ms", "auth_pass_file": None}  # VRRPv3 has no authentication


@pytest.mark.parametrize("keepalive, vrrp", [(False, {}), (True, {}), (False, VRRPV3)],
                         ids=["new-connections", "keep-alive", "vrrpv3-100ms"])
def test_link_down_moves_the_vip_and_preemption_brings_it_back(lab, keepalive, vrrp):
    a, b = start_pair(lab, **vrrp)
    client = Client(lab, "link", keepalive=keepalive)
    lab.link("a", up=False)
    wait_until(b.holds, TAKEOVER, "b to take the VIP")
    client.reached("b")
    lab.link("a", up=True)
    settle(a, b)  # no nopreempt: the higher priority takes it back
    client.reached("a")
    results = client.results()
    assert served_by(results)[:3] == ["a", "b", "a"], served_by(results)
    how = "VRRPv3, advert_int 0.1" if vrrp else "advert_int 1"
    record(lab.directory, f"link down, {how}, {'keep-alive' if keepalive else 'new connection'}", results)


def test_a_killed_load_balancer_puts_its_node_in_fault_at_once(lab):
    # lbctl check runs every 30 s here (two failures: a minute): only vrrp_track_process,
    # which hears of the exit from the kernel, moves the VIP within the deadline
    a, b = start_pair(lab, check_interval="30s")
    client = Client(lab, "killed")
    stop(a.haproxy, sig=9)
    wait_until(b.holds, 20, "b to take the VIP when a's haproxy is gone")
    wait_until(lambda: a.states()["vip"] == "FAULT", 20, "a to be notified FAULT (its process tracked)")
    client.reached("b")
    a.start_haproxy()  # keepalived sees it start: a leaves FAULT and takes the VIP back (preemption)
    settle(a, b)
    client.reached("a")
    results = client.results()
    assert "b" in served_by(results)
    record(lab.directory, "load balancer killed (vrrp_track_process)", results)


def test_only_its_own_load_balancer_counts(lab):
    """Both HAProxy processes run on one host: b's, with b's file in its command line,
    does not keep a out of FAULT."""
    a, b = start_pair(lab, check_interval="30s")
    stop(b.haproxy, sig=9)
    wait_until(lambda: b.states()["vip"] == "FAULT", 20, "b to be notified FAULT")
    assert a.states()["vip"] == "MASTER" and a.holds()


def test_a_failing_check_moves_the_vip_without_a_failed_request(lab):
    a, b = start_pair(lab)
    client = Client(lab, "check")
    cfg = a.dir / "haproxy-a.cfg"
    text = cfg.read_text()
    cfg.write_text(text + "# changed behind lbctl's back, not loaded\n")  # the running HAProxy is behind
    wait_until(b.holds, TAKEOVER, "b to take the VIP when a's check fails")
    assert "runs an older configuration" in (a.dir / "state" / "edge" / "check.json").read_text()
    client.reached("b")
    cfg.write_text(text)
    a.cli("reload", "-t", "edge")  # it loads the file in place: fit again
    settle(a, b)
    client.reached("a")
    results = client.results()
    figures = record(lab.directory, "health check failing (file ahead of the running HAProxy)", results)
    assert served_by(results)[:3] == ["a", "b", "a"] and figures["failed"] == 0, figures


SWITCHOVERS = 3
SLOW = 15.0  # seconds a request may take on a loaded machine: lost, not slow, is what fails
RESETS = ("ConnectionResetError", "BrokenPipeError", "RemoteDisconnected")  # on a new connection


def test_drain_node_switches_over_and_back_without_a_failed_request(lab):
    """Two clients that never retry, a request every 20 ms each: one on a new connection
    each time, one keeping its connection alive.  Not one request fails over three drains
    and restores (each a VIP move both ways).  VRRP moves addresses, not connections: a
    connection kept alive to the old node would be reset by the new one, so drain-node
    first has the old node's HAProxy answer ``Connection: close`` (its drain_map) and
    waits for its connections to go, and --restore asks the peer's lbctl watch to do the
    same: no request fails on a connection kept alive (without drain_map: one per move).
    A connection not made within 0.25 s fails (a lost SYN): none does; a slow answer on
    this loaded machine does not.  What VRRP leaves (docs/high-availability.md, "What
    remains"): a connection the client opened to the old node in the instant it takes in
    the gratuitous ARP has its request reset by the new node; on this loaded machine the
    client may sit in that instant for milliseconds, so such a reset (a new connection,
    at most one per move) is counted, not failed."""
    a, b = start_pair(lab, watch=True)
    clients = {"new connection": Client(lab, "drain", timeout=SLOW),
               "keep-alive": Client(lab, "drain-keep", keepalive=True, timeout=SLOW)}
    for _ in range(SWITCHOVERS):
        out = a.cli("drain-node", "-t", "vip", "--timeout", "30").stdout
        assert "drained" in out and "edge closed its client connections" in out and b.holds() and not a.holds(), out
        assert "(drained)" in a.cli("status", "-t", "vip").stdout
        for client in clients.values():
            client.reached("b")
        out = a.cli("drain-node", "-t", "vip", "--restore", "--timeout", "30").stdout
        assert "peer b: edge closed its client connections" in out and "edge keeps connections alive again" in out, out
        settle(a, b)
        for client in clients.values():
            client.reached("a")
    for load, client in clients.items():
        results = client.results()
        figures = record(lab.directory, f"planned switchover x{SWITCHOVERS} (drain-node and --restore), {load}",
                         results)
        assert served_by(results)[:2 * SWITCHOVERS + 1] == ["a", "b"] * SWITCHOVERS + ["a"], served_by(results)
        assert figures["failed_reused"] == 0 and figures["retried"] == 0, figures
        assert set(figures["failed_how"]) <= set(RESETS) and figures["failed"] <= 2 * SWITCHOVERS, figures
    assert any(r[4] for r in results), "the keep-alive client kept its connections alive between the moves"
    assert (a.dir / "drain.map").read_text() == "", "a keeps connections alive once restored"
    assert (b.dir / "drain.map").read_text() == "drain 1\n", "b, BACKUP, closes them until it is MASTER again"
    reopened = [e for e in b.audit() if e.get("result") == "MASTER" and "keeps connections alive again" in e["message"]]
    assert len(reopened) == SWITCHOVERS, b.audit()


def test_only_a_peer_may_ask_for_a_handover(lab):
    a, b = start_pair(lab, watch=True)
    wait_until(lambda: "peer b: vip BACKUP" in a.cli("status", "-t", "vip", check=False).stdout, TAKEOVER,
               "a to see b")
    ask = ("import sys,urllib.request,urllib.error\n"
           "try: urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'', method='POST'), timeout=5)\n"
           "except urllib.error.HTTPError as e: print(e.code, e.read().decode())\n")
    out = lab.run("c", [sys.executable, "-c", ask, f"http://{ADDRESSES['a']}:{WATCH_PORT}/vrrp/vip/handover"],
                  timeout=30).stdout
    assert out.startswith("403") and "is not a peer of node a" in out, out
    assert (a.dir / "drain.map").read_text() == ""


def test_drain_node_refuses_while_the_peer_is_not_ready(lab):
    a, b = start_pair(lab, watch=True)
    b.cli("drain-node", "-t", "vip", "--timeout", "30")  # b: BACKUP, drained
    wait_until(lambda: "peer b: vip BACKUP" in a.cli("status", "-t", "vip", check=False).stdout, TAKEOVER,
               "a to see b")
    refused = a.cli("drain-node", "-t", "vip", "--timeout", "30", check=False)
    assert refused.returncode == 1 and "not draining node a: peer b is drained itself" in refused.stderr, refused
    assert a.holds() and (a.dir / "drain").read_text().strip() == "0"


def test_nopreempt_keeps_the_vip_where_it_went(lab):
    a, b = start_pair(lab, nopreempt=True)
    lab.link("a", up=False)
    wait_until(b.holds, TAKEOVER, "b to take the VIP")
    lab.link("a", up=True)
    wait_until(lambda: a.states().get("vip") == "BACKUP" and b.states()["vip"] == "MASTER", TAKEOVER,
               "a back as BACKUP, b still MASTER")
    assert b.holds() and not a.holds()


def test_drain_node_with_nopreempt_goes_through_fault_and_restore_leaves_the_vip(lab):
    a, b = start_pair(lab, nopreempt=True)
    a.cli("drain-node", "-t", "vip", "--timeout", "30")
    assert a.states()["vip"] == "FAULT" and b.holds() and not a.holds()
    out = a.cli("drain-node", "-t", "vip", "--restore", "--timeout", "30").stdout
    assert "restored to priority 150" in out
    wait_until(lambda: a.states()["vip"] == "BACKUP", TAKEOVER, "a back to BACKUP")
    assert b.holds() and not a.holds()


def test_apply_reloads_keepalived_and_a_bad_change_is_rolled_back(lab):
    a, _b = start_pair(lab)
    a.write_config(advert_int="2s")
    out = a.cli("apply", "-t", "vip").stdout
    assert "advert_int 2" in (a.dir / "keepalived.conf").read_text(), out
    assert a.holds()
    a.write_config(interface="nosuchif0")
    failed = a.cli("apply", "-t", "vip", check=False)
    assert failed.returncode == 1 and "keepalived rejected" in failed.stderr, failed.stderr
    assert "advert_int 2" in (a.dir / "keepalived.conf").read_text() and a.holds()


def test_status_on_either_node_shows_both_and_whether_their_configs_match(lab):
    a, b = start_pair(lab, watch=True)

    def status_of(node: Node) -> str:
        return node.cli("status", "-t", "vip", check=False).stdout

    wait_until(lambda: "peer a: vip MASTER; configs match" in status_of(b), TAKEOVER, "b's status to show a")
    assert "node b: vip BACKUP" in status_of(b) and "peer b: vip BACKUP; configs match" in status_of(a)
    metrics = lab.run("c", ["python3", "-c", "import urllib.request as u; print(u.urlopen("
                            "'http://198.18.0.11:9100/metrics', timeout=5).read().decode())"]).stdout
    assert 'lbctl_vrrp_state{instance="vip",target="vip"} 2.0' in metrics
    raw = (b.dir / "inventory.yml").read_text()
    (b.dir / "inventory.yml").write_text(raw.replace("port: 9000", "port: 9001"))  # only b's source changes
    b.cli("apply", "-t", "edge", "--allow-removal", "app")
    wait_until(lambda: "configs differ: edge" in status_of(a), TAKEOVER, "a's status to see b's other edge config")
