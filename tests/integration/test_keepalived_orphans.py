"""``forward_orphans`` (docs/high-availability.md#forwarding-orphan-segments): the race
of a planned switchover, provoked, in the namespace pair of test_keepalived_pair.py.
A client completes its handshake with the master, the master is drained (the VIP
moves, the client takes in the new master's gratuitous ARP), then the client sends
its request: it reaches the new master, which knows no such connection.  Without
the option it is reset; with it the new master hands the segment to the old one,
which answers.  Needs root and nft: without them these fail, not skip."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from lbctl_testkit.support import requires_haproxy, wait_until
from lbctl_testkit.support.netns import VIP, Lab
from lbctl_testkit.support.pair import PORT, ROOT, TAKEOVER, settle, start_pair
from lbctl_testkit.support.procs import requires_keepalived, requires_nft

pytestmark = [*requires_haproxy, *requires_keepalived, *requires_nft]
VRRP = {"vrrp_version": 3, "advert_int": "100ms", "auth_pass_file": None, "drain_time": "0s"}


@pytest.fixture
def lab(tmp_path):
    assert os.geteuid() == 0, "the keepalived pair tests need root to make network namespaces"
    with Lab(tmp_path) as lab_:
        yield lab_


def client(lab, name: str, *source_port: int):
    """A raceclient in the client's namespace; its output file."""
    out = lab.directory / f"race-{name}"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'testkit'}"}
    proc = lab.start("c", [sys.executable, "-m", "lbctl_testkit.support.raceclient", VIP, str(PORT), str(out),
                           *map(str, source_port)], lab.directory / f"race-{name}.log", env=env)
    wait_until(lambda: Path(f"{out}.connected").exists() or proc.poll() is not None, 30, "the client's handshake")
    return proc, out


def answer(proc, out: Path) -> str:
    Path(f"{out}.go").touch()
    proc.wait(30)
    return out.read_text()


def race(lab, a, b, name: str) -> str:
    """One request sent after the VIP moved to ``b`` on a connection made with ``a``; then back."""
    proc, out = client(lab, name)
    a.cli("drain-node", "-t", "vip", "--timeout", str(TAKEOVER))
    assert b.holds() and not a.holds()
    said = answer(proc, out)
    a.cli("drain-node", "-t", "vip", "--restore", "--timeout", str(TAKEOVER))
    settle(a, b)
    return said


def tables(lab) -> list[str]:
    return [n for n in "ab" if "lbctl_vip" in lab.run(n, ["nft", "list", "tables"]).stdout]


def test_forward_orphans_answers_the_request_that_reaches_the_new_master(lab):
    a, b = start_pair(lab, **VRRP)
    assert race(lab, a, b, "without") == "failed ConnectionResetError"  # the race, provoked
    for node in (a, b):
        node.write_config(**VRRP, forward_orphans="30s")  # long: a loaded machine may be slow to send
        node.cli("apply")
    assert tables(lab) == ["a", "b"]
    assert lab.run("a", ["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose"]).stdout.strip() == "0"
    assert race(lab, a, b, "with") == "answer a"  # the old master answered, through the new one
    for node in (a, b):
        node.write_config(**VRRP)
        node.cli("apply")
    assert tables(lab) == []


def test_forward_orphans_hands_on_a_connection_from_a_port_the_node_closed_before(lab):
    """The client reuses a port: ``a`` closed a connection from it moments ago (its
    conntrack still had that connection, in TIME_WAIT, for 120 s by default), the client
    connects from it again while ``b`` holds the VIP, and the VIP comes back to ``a``
    before the request: ``a`` must hand the request on, not reset it or leave it waiting."""
    a, b = start_pair(lab, **VRRP)
    for node in (a, b):
        node.write_config(**VRRP, forward_orphans="30s")
        node.cli("apply")
    assert answer(*client(lab, "before", 40123)) == "answer a"  # a closes first (Connection: close)
    a.cli("drain-node", "-t", "vip", "--timeout", str(TAKEOVER))
    proc, out = client(lab, "again", 40123)  # the same port, now with b
    a.cli("drain-node", "-t", "vip", "--restore", "--timeout", str(TAKEOVER))
    assert a.holds() and not b.holds()
    assert answer(proc, out) == "answer b"
    assert lab.run("a", ["sysctl", "-n", "net.netfilter.nf_conntrack_tcp_timeout_time_wait"]).stdout.strip() == "1"
