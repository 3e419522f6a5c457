"""The Consul change feed against the emulator (its 200-connection cap on, as in
every test), through py-consul: many services on a bounded number of connections,
changes found by the check diff and by the catalog index, 429 back-pressure, and
service names that must never leave their path segment."""

from __future__ import annotations

import base64

import contextlib
import logging
import threading
from pathlib import Path

import pytest

from lbctl.config import consul as consul_config
from lbctl.discovery.consul import Client
from lbctl.discovery.watcher import ConsulWatcher
from lbctl.errors import DiscoveryError
from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl.watch.metrics import Metrics
from lbctl_testkit.support import wait_until
from lbctl_testkit.support.stack import Stack

pytestmark = pytest.mark.integration
NODES = 10


@pytest.fixture
def emu():
    with ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0) as e:
        for n in range(NODES):
            e.add_node(f"node-{n}", f"10.0.{n}.1")
        yield e


def fill(emu: ConsulEmulator, services: int, instances: int = 2) -> None:
    with emu.transaction():
        for s in range(services):
            for k in range(instances):
                emu.add_service(f"svc-{s}", node=f"node-{(s + k) % NODES}", service_id=f"svc-{s}-{k}",
                                address=f"10.1.{s // 200}.{s % 200 + 1}", port=8000 + k, tags=["edge"])


class Feed:
    """A running watcher and what it reported."""

    def __init__(self, emu: ConsulEmulator, **consul) -> None:
        settings = consul_config.consul({"address": f"127.0.0.1:{emu.port}", "tag": "edge", "wait": "5s", **consul}, Path("."))
        self.metrics = Metrics()
        self.client = Client(settings, self.metrics.consul_request, retry_max=2.0)
        self.changed: list[set[str]] = []
        self.watcher = ConsulWatcher(self.client, self.changed.append, retry_max=2.0)
        self.metrics.follow_consul(self.watcher.age, lambda: self.client.in_use)

    def ids(self, service: str) -> set[str]:
        return {e["Service"]["ID"] for e in self.watcher.snapshot().get(service, [])}

    def status(self, service: str, sid: str) -> set[str]:
        entry = next(e for e in self.watcher.snapshot()[service] if e["Service"]["ID"] == sid)
        return {c["Status"] for c in entry["Checks"]}

    def metric(self, name: str) -> float:
        for line in self.metrics.text().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0


@contextlib.contextmanager
def running(emu: ConsulEmulator, yield_to=None, **consul):
    feed = Feed(emu, **consul)
    feed.client.yield_to = yield_to
    feed.watcher.start()
    try:
        yield feed
    finally:
        feed.watcher.stop()


def test_a_thousand_services_on_sixteen_connections(emu):
    fill(emu, 1000)
    emu.reset_connection_stats()
    with running(emu, max_connections=16) as feed:
        wait_until(feed.watcher.ready, 120, "every service read once")
        assert len(feed.watcher.snapshot()) == 1000
        assert emu.peak_connections() <= 16 and emu.refused() == 0
        # a deregistration plus a new instance: only that service is read again
        emu.reset_requests()
        emu.remove_service("svc-500-0", node="node-0")
        emu.add_service("svc-500", node="node-7", service_id="svc-500-9", address="10.9.9.9", port=9000, tags=["edge"])
        wait_until(lambda: feed.ids("svc-500") == {"svc-500-1", "svc-500-9"}, 30, "the new instance")
        # a node's check concerns every service with an instance on it
        emu.set_node_health("node-3", "critical")
        wait_until(lambda: feed.status("svc-3", "svc-3-0") == {"critical", "passing"}
                   and feed.status("svc-2", "svc-2-1") == {"critical", "passing"}, 30, "node-3's services")
        assert emu.request_count("/v1/health/service/") < 400  # only the services on node-3 and svc-500
        assert emu.peak_connections() <= 16 and emu.refused() == 0
        assert feed.metric('lbctl_consul_requests_total{endpoint="service",outcome="429"}') == 0
        assert feed.metric('lbctl_consul_requests_total{endpoint="service",outcome="ok"}') >= 1000
        assert 0 <= feed.metric("lbctl_consul_connections") <= 16
        assert 0 <= feed.metric("lbctl_discovery_data_age_seconds") < 30


def test_catalog_changes_without_check_changes_are_caught(emu, caplog):
    caplog.set_level(logging.INFO, "lbctl.consul")
    fill(emu, 20)
    with running(emu, max_connections=3) as feed:  # no hot queries (hot_slots): the hunt finds the edits
        wait_until(feed.watcher.ready, 30, "every service read once")
        # an instance without checks, in a service whose instances all have checks
        emu.add_service("svc-4", node="node-1", service_id="svc-4-7", address="10.7.7.7", port=7000,
                        tags=["edge"], status=None)
        wait_until(lambda: "svc-4-7" in feed.ids("svc-4"), 30, "the instance without checks")
        assert "moved without a check change: looking for the service it changed" in caplog.text
        # its port alone changes: the checks feed sees nothing
        emu.reset_requests()
        emu.add_service("svc-4", node="node-1", service_id="svc-4-7", address="10.7.7.7", port=7001,
                        tags=["edge"], status=None)
        wait_until(lambda: any(e["Service"]["Port"] == 7001 for e in feed.watcher.snapshot()["svc-4"]), 30,
                   "the new port")
        # one write, one service: the hunt stops at the service (changed last, so read first) with its index
        assert emu.request_count("/v1/health/service/") <= 4
        # the checks table's index, to see that no check was written at that index: one lookup, not a filter
        assert emu.request_count("/v1/health/node/lbctl-checks-index") >= 1
        # meta alone changes on an instance with a check
        emu.add_service("svc-9", node="node-9", service_id="svc-9-0", address="10.1.0.10", port=8000,
                        tags=["edge"], meta={"lb-state": "drain"})
        wait_until(lambda: any((e["Service"]["Meta"] or {}).get("lb-state") == "drain"
                               for e in feed.watcher.snapshot()["svc-9"]), 30, "the new meta")
        # a service leaves the selection when its tag goes
        for k in range(2):
            emu.add_service("svc-7", node=f"node-{(7 + k) % NODES}", service_id=f"svc-7-{k}",
                            address="10.1.0.8", port=8000 + k, tags=["other"])
        wait_until(lambda: "svc-7" not in feed.watcher.snapshot(), 30, "svc-7 to leave")
        assert {"svc-7"} in feed.changed


def test_a_service_that_changed_has_its_own_query_which_answers_its_next_changes(emu):
    fill(emu, 50)
    with running(emu, max_connections=16) as feed:
        wait_until(feed.watcher.ready, 30, "every service read once")
        reads, health = [], feed.client.health
        feed.client.health = lambda name, index=0: reads.append((name, index)) or health(name, index)
        emu.set_service_health("svc-45-0", "critical", node="node-5")
        wait_until(lambda: "critical" in feed.status("svc-45", "svc-45-0"), 30, "the first change")
        # svc-45 changed: it is hot, with a blocking query of its own beside the two feeds
        wait_until(lambda: "svc-45" in feed.watcher.hot.held and emu.blocking_queries >= 3, 30, "svc-45's own query")
        del reads[:]
        emu.set_service_health("svc-45-0", "passing", node="node-5")
        wait_until(lambda: feed.status("svc-45", "svc-45-0") == {"passing"}, 30, "the check's change")
        # an edit no check shows (the weight alone): its query answers it, no hunt
        emu.add_service("svc-45", node="node-5", service_id="svc-45-0", address="10.1.0.46", port=8000,
                        tags=["edge"], weights={"Passing": 7, "Warning": 1})
        wait_until(lambda: any(e["Service"]["Weights"]["Passing"] == 7 for e in feed.watcher.snapshot()["svc-45"]),
                   30, "the new weight")
        wait_until(lambda: emu.blocking_queries >= 3, 30, "svc-45's query again")
        # svc-45 was read only by its own blocking query (an index sent), never by a reader
        mine = [index for name, index in reads if name == "svc-45"]
        assert len(mine) >= 2 and all(index > 0 for index in mine)
        assert emu.peak_connections() <= 16


def test_a_feed_answer_is_read_only_once_the_round_under_way_lets_it(emu):
    """While lbctl watch applies a change (its ``Client.yield_to`` waits for the round),
    the feeds' answers stay unread: the check feed's answer to a change of a service
    without a query of its own waits there, and the change is found once it is let go.
    First answers and single-service reads are never held."""
    fill(emu, 20)
    let_go, held = threading.Event(), []

    def hold(seconds):
        held.append(threading.current_thread().name)
        let_go.wait(30)
    with running(emu, yield_to=hold) as feed:
        wait_until(feed.watcher.ready, 30, "every service read once")
        w = feed.watcher
        wait_until(lambda: not (w.urgent or w.sweep or w.hunt or w.busy), 30, "no read left to make")
        assert held == []  # the first answers (index 0) are not held
        s = next(s for s in range(20) if f"svc-{s}" not in feed.watcher.recent)  # not hot: only the feed sees it
        del feed.changed[:]
        emu.set_service_health(f"svc-{s}-0", "critical", node=f"node-{s % NODES}")
        wait_until(lambda: "watch checks" in held, 30, "the check feed's answer to wait")
        assert not any(f"svc-{s}" in names for names in feed.changed)  # its body unread: nothing found yet
        let_go.set()
        wait_until(lambda: any(f"svc-{s}" in names for names in feed.changed), 30, "the change, once let go")
        assert "critical" in feed.status(f"svc-{s}", f"svc-{s}-0")
        assert set(held) <= {"watch checks", "watch catalog"}  # the feeds' threads only: not the reader of it


def test_429_slows_the_whole_watcher_down_and_it_still_gets_everything(emu):
    fill(emu, 200)
    emu.set_max_conns_per_client(5)  # another client of this agent holds the rest
    with running(emu, max_connections=16) as feed:
        wait_until(feed.watcher.ready, 120, "every service read once, past the 429s")
        refused = emu.refused()
        assert feed.metric('lbctl_consul_requests_total{endpoint="service",outcome="429"}') >= 1
        assert refused < 400  # back-off shared by every reader, not a retry storm
        emu.set_service_health("svc-10-0", "critical", node="node-0")
        wait_until(lambda: "critical" in feed.status("svc-10", "svc-10-0"), 30, "a change after the 429s")


HOSTILE = ["../../v1/agent/self", "a/b", "..", "x?y=1", "p%2Fq", "h#i"]


def test_hostile_names_are_skipped_with_one_warning_and_block_nothing(emu, caplog):
    fill(emu, 5)
    for i, name in enumerate(HOSTILE):
        emu.add_service(name, node="node-1", service_id=f"bad-{i}", address="10.5.5.5", port=80, tags=["edge"])
    caplog.set_level(logging.WARNING, "lbctl.consul")
    with running(emu, max_connections=4) as feed:
        wait_until(feed.watcher.ready, 30, "the good services read once")
        assert set(feed.watcher.snapshot()) == {f"svc-{s}" for s in range(5)}
        emu.set_service_health("svc-1-0", "critical", node="node-1")  # the watch goes on
        wait_until(lambda: "critical" in feed.status("svc-1", "svc-1-0"), 30, "a change")
    skipped = [r.getMessage() for r in caplog.records if "skipped: its name is not a plain identifier" in r.getMessage()]
    assert len(skipped) == len(HOSTILE)  # one each, however often the catalog answers
    asked = {p for p in emu.requests if p.startswith("/v1/")}
    allowed = {"/v1/catalog/services", "/v1/health/state/any", "/v1/health/node/lbctl-checks-index"} | {
        f"/v1/health/service/svc-{s}" for s in range(5)}
    assert asked <= allowed, asked - allowed


def test_render_skips_a_hostile_name_and_renders_the_rest(tmp_path, emu):
    fill(emu, 3)
    emu.add_service("../agent/self", node="node-1", service_id="bad", address="10.5.5.5", port=80, tags=["edge"])
    stack = Stack(tmp_path, "haproxy")
    stack.inventory([])
    stack.use_consul(emu.port, tag="edge")
    result = stack.run("render", "-t", "edge")
    assert result.exit_code == 0, result.output
    assert all(f"backend svc-{s}\n" in result.stdout for s in range(3))
    assert "consul service '../agent/self' skipped" in result.stderr
    assert not any("agent" in p for p in emu.requests)


def dead_port() -> int:
    """A loopback port nothing listens on (a proxy that refuses every connection)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plain_client(emu: ConsulEmulator) -> Client:
    return Client(consul_config.consul({"address": f"127.0.0.1:{emu.port}", "services": ["svc-0"]}, Path(".")),
                  retry_max=0.1)


def test_the_proxy_environment_is_read_once_when_the_client_is_made(emu, monkeypatch):
    fill(emu, 1)
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    proxy = f"http://127.0.0.1:{dead_port()}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    refused = plain_client(emu)  # made with the proxy in the environment: it goes through it, as requests does
    with pytest.raises(DiscoveryError):
        refused.health("svc-0")
    refused.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    client = plain_client(emu)  # made with the agent's address exempted
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("no_proxy")  # the environment changes afterwards: the client keeps what it read
    try:
        assert {e["Service"]["ID"] for e in client.health("svc-0")[1]} == {"svc-0-0", "svc-0-1"}
    finally:
        client.close()


def test_every_request_carries_the_token_and_the_credentials(emu, monkeypatch, tmp_path):
    """lbctl's GETs go to the HTTP adapter without requests' Session (``pool.get``): the ACL
    token, the credentials from ~/.netrc and the plain encoding must still go with each."""
    fill(emu, 1)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login lb password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("LB_CONSUL_TOKEN", "token-for-lbctl")
    seen, serve = [], emu._serve
    monkeypatch.setattr(emu, "_serve", lambda method, path, headers, body: (
        seen.append((path, headers.get("X-Consul-Token"), headers.get("Authorization"),
                     headers.get("Accept-Encoding"))), serve(method, path, headers, body))[1])
    settings = consul_config.consul({"address": f"127.0.0.1:{emu.port}", "services": ["svc-0"],
                                     "token_env": "LB_CONSUL_TOKEN"}, Path("."))
    client = Client(settings, retry_max=0.1)
    try:
        assert {e["Service"]["ID"] for e in client.health("svc-0")[1]} == {"svc-0-0", "svc-0-1"}
        assert "svc-0" in client.services()[1]
        client.checks()
    finally:
        client.close()
    basic = "Basic " + base64.b64encode(b"lb:secret").decode()
    assert [path.split("?")[0] for path, *_ in seen] == [
        "/v1/health/service/svc-0", "/v1/catalog/services", "/v1/health/state/any"]
    assert {tuple(rest) for _, *rest in seen} == {("token-for-lbctl", basic, "identity")}


def test_credentials_in_netrc_are_read_once_when_the_client_is_made(emu, monkeypatch, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login lb password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = plain_client(emu)
    netrc.unlink()
    try:
        assert client.api.http.session.auth == ("lb", "secret")  # what requests would send, read before the first request
        assert client.health("svc-0")[0] >= 1
    finally:
        client.close()
