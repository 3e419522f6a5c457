"""Checks the emulator's agent runs itself (HTTP, TCP, script), and the agent/catalog
details py-consul's own test suite found: registration errors, datacenters, filters
on catalog/node, agent/self and members, tagged addresses, peers.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import consul
import pytest
import requests
from consul import Check

from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.emulators.consul.agent import SCRIPTS_DISABLED


EMULATOR_SEED = 9


def wait_check(cc, cid: str, status: str, timeout: float = 10.0) -> dict:
    """Poll the agent until check *cid* has *status*; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        chk = cc.agent.checks().get(cid)
        if chk is not None and chk["Status"] == status:
            return chk
        if time.monotonic() > deadline:
            pytest.fail(f"check {cid} never became {status}: {chk}")
        time.sleep(0.05)


class Target:
    """A loopback HTTP server answering every GET with ``self.code``."""

    def __init__(self) -> None:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                self.send_response(target.code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.code = 200
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/health"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_check_follows_its_target(emu, cc):
    target = Target()
    try:
        assert cc.agent.service.register("web", service_id="web-1", port=80, check=Check.http(target.url, "1s"))
        chk = wait_check(cc, "service:web-1", "passing")
        assert chk["Output"] == f"HTTP GET {target.url}: 200 OK Output: ok" and chk["Type"] == "http"
        target.code = 429
        wait_check(cc, "service:web-1", "warning")
        target.code = 503
        wait_check(cc, "service:web-1", "critical")
        target.code = 200
        wait_check(cc, "service:web-1", "passing")
    finally:
        target.close()
    chk = wait_check(cc, "service:web-1", "critical")
    assert "connection refused" in chk["Output"]
    _, [entry] = cc.health.service("web")
    assert {c["CheckID"]: c["Status"] for c in entry["Checks"]}["service:web-1"] == "critical"
    assert cc.agent.service.deregister("web-1")
    assert emu.store._probes == {}, "a deregistered check stops running"


def test_tcp_check_and_the_minimum_interval(emu, cc):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    assert cc.agent.check.register("db", Check.tcp("127.0.0.1", port, "100ms"))  # raised to 1 s
    chk = wait_check(cc, "db", "passing")
    assert chk["Output"] == f"TCP connect 127.0.0.1:{port}: Success" and chk["Interval"] == "100ms"
    lsock.close()
    chk = wait_check(cc, "db", "critical")
    assert chk["Output"] == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


def test_script_checks_are_refused_by_default_like_consul(cc):
    with pytest.raises(consul.ConsulException, match="Scripts are disabled on this agent from remote calls"):
        cc.agent.check.register("s", Check.script(["/bin/true"], "1s"))
    with pytest.raises(consul.ConsulException, match="Scripts are disabled"):
        cc.agent.service.register("web", check=Check.script(["/bin/true"], "1s"))
    assert cc.agent.checks() == {} and cc.agent.services() == {}
    assert "enable_script_checks" in SCRIPTS_DISABLED


def test_script_checks_run_when_enabled():
    with ConsulEmulator(enable_script_checks=True) as emu:
        cc = consul.Consul(port=emu.port)
        assert cc.agent.check.register("s", Check.script(["sh", "-c", "echo degraded; exit 1"], 10))  # 10 ns
        chk = wait_check(cc, "s", "warning")
        assert chk["Output"] == "degraded\n" and chk["Interval"] == "10ns" and chk["Type"] == "script"


def test_check_registration_errors(emu, cc):
    assert cc.agent.check.register("c", Check.ttl("10s"), service_id="nope") is False  # 404
    r = requests.put(f"{emu.url}/v1/agent/check/register", json={"Name": "c", "TTL": "10s", "ServiceID": "nope"},
                     timeout=5)
    assert (r.status_code, r.text) == (404, 'ServiceID "nope" does not exist')
    r = requests.put(f"{emu.url}/v1/agent/check/register", json={"Name": "c", "HTTP": "http://x", "Interval": "0s",
                                                                  "ServiceID": "nope"}, timeout=5)
    assert r.status_code == 400 and r.text.startswith("Invalid check: "), "the check is vetted before the service"
    assert cc.agent.checks() == {}


def test_unknown_datacenter_in_a_catalog_write_body(emu, cc):
    before = emu.store.index
    with pytest.raises(consul.ConsulException, match="No path to datacenter"):
        cc.catalog.register("n1", "10.0.0.1", dc="dc2")
    with pytest.raises(consul.ConsulException, match="No path to datacenter"):
        cc.catalog.deregister("node-a", dc="dc2")
    assert emu.store.index == before and cc.catalog.node("n1")[1] is None
    assert cc.catalog.register("n1", "10.0.0.1", dc="dc1") is True


def test_catalog_node_filter_applies_to_its_services_and_catalog_connect(emu, cc):
    assert cc.catalog.register("n1", "10.0.0.1", service={"service": "web", "tags": ["prod"]})
    _, node = cc.catalog.node("n1", filter_expr='"prod" in Tags')
    assert list(node["Services"]) == ["web"] and node["Node"]["Node"] == "n1"
    _, node = cc.catalog.node("n1", filter_expr='Service == "db"')
    assert node["Services"] == {}
    assert cc.catalog.register("n1", "10.0.0.1", service={"service": "web-proxy", "kind": "connect-proxy", "port": 21000,
                                                          "proxy": {"DestinationServiceName": "web"}})
    _, rows = cc.catalog.connect("web")
    assert [r["ServiceName"] for r in rows] == ["web-proxy"]
    _, rows = cc.catalog.connect("web", filter_expr='ServicePort == 1')
    assert rows == []


def test_agent_self_members_leader_and_peers(emu, cc):
    me = cc.agent.self()
    assert {"Config", "Coord", "DebugConfig", "Member", "Meta", "Stats", "xDS"} == set(me)
    assert me["Stats"]["consul"]["leader_addr"] == cc.status.leader() == "127.0.0.1:8300"
    assert cc.status.peers() == ["127.0.0.1:8300"]
    assert me["Member"] in cc.agent.members()
    assert [m["Name"] for m in cc.agent.members(wan=True)] == ["node-a.dc1"]
    emu.set_leader(False)
    assert cc.agent.self()["Stats"]["consul"]["leader_addr"] == "" and cc.status.leader() == ""


def test_tagged_addresses_peer_and_ui_redirect(emu, cc):
    assert cc.agent.service.register("web", tagged_addresses={"lan": {"address": "10.0.0.1", "port": 80}})
    assert cc.agent.services()["web"]["TaggedAddresses"] == {"lan": {"Address": "10.0.0.1", "Port": 80}}
    r = requests.put(f"{emu.url}/v1/agent/service/register", json={"Name": "x", "TaggedAddresses": {"lan": "1.2.3.4"}},
                     timeout=5)
    assert r.status_code == 400 and "TaggedAddresses" in r.text
    assert len(cc.health.service("web")[1]) == 1 and cc.health.service("web", peer="p1")[1] == []
    assert cc.catalog.service("web", peer="p1")[1] == []
    r = requests.get(f"{emu.url}/", allow_redirects=False, timeout=5)
    assert (r.status_code, r.headers["Location"]) == (301, "/ui/")
    assert requests.get(f"{emu.url}/", timeout=5).status_code == 200
