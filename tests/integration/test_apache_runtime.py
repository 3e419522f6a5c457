"""Apache's runtime path end to end (docs/apache.md#runtime-changes): ``lbctl apply`` and
``lbctl watch`` change weights and states, and take members out, through
balancer-manager without a graceful restart (the parent's configuration generation
and its children stay the same), read back; a new member is added the same way to
every VirtualHost's copy of its balancer, until the spare slots are used up (then a
graceful); a failed probe undoes a runtime change; drift made by hand is found and
put back."""

from __future__ import annotations

import json
import subprocess
import warnings
from collections import Counter

import pytest
import requests

from lbctl.targets.apache import ctl as apache_ctl
from lbctl.targets.apache import view
from lbctl.targets.apache.manager import Manager
from lbctl_testkit.support import Backend, free_port, http_get, wait_until
from lbctl_testkit.support.apache import requires_apache
from lbctl_testkit.support.stack import Stack
from lbctl_testkit.support.world import running_world
from tests.integration.test_apache import FAST_CHECK as CHECK

pytestmark = requires_apache


class Apache:
    """A Stack of kind apache serving pool ``app``, and what lbctl sees of it."""

    def __init__(self, stack: Stack, backends: dict[str, Backend]) -> None:
        self.stack, self.backends = stack, backends
        self.manager = Manager(f"127.0.0.1:{stack.port}", host="lbctl-default.invalid", path=view.MANAGER_PATH)
        self.listeners = {"web": {"address": "127.0.0.1", "port": self.stack.port, "default_pool": "app"}}

    def apply(self, *members, expect: str | None = "through the runtime API, without a reload", force=False) -> None:
        """Apply pool ``app`` of ``members`` (names, or (name, {fields})); ``expect``: how (None: any way)."""
        rows = []
        for m in members:
            name, extra = (m, {}) if isinstance(m, str) else m
            rows.append({"name": name, "address": "127.0.0.1", "port": self.backends[name].port, **extra})
        self.stack.write_raw({"listeners": self.listeners, "pools": {"app": {"health": CHECK, "members": rows}}})
        result = self.stack.run("apply", *(["--force"] if force else []))
        assert result.exit_code == 0, result.output
        assert expect is None or result.output == f"edge: applied {self.stack.live} {expect}\n"

    def generation(self) -> tuple:
        """The parent, its children and its configuration generation: a graceful changes them."""
        gen = self.stack.process.generation()
        return gen.parent_pid, gen.children, gen.config_generation

    def worker(self, name: str):
        return self.manager.read()["app"].worker("127.0.0.1", self.backends[name].port)

    def spread(self, n: int = 20) -> Counter:
        return self.stack.spread(n)


@pytest.fixture
def apache(tmp_path):
    """Members a and b applied and serving; backend c waits."""
    with Backend("a") as a, Backend("b") as b, Backend("c") as c:
        lb = Apache(Stack(tmp_path, "apache"), {"a": a, "b": b, "c": c})
        lb.apply("a", "b", expect=None)
        with lb.stack.running():
            wait_until(lambda: set(lb.spread(10)) == {"a", "b"}, 10, "both members to take traffic")
            yield lb


def test_weights_and_states_change_without_a_graceful(apache):
    before = apache.generation()
    apache.apply("a", ("b", {"weight": 3}))
    assert apache.worker("b").loadfactor == 3.0
    spread = apache.spread(40)
    assert spread["b"] >= 2 * spread["a"] > 0, spread
    for state, flags in (("drain", "N"), ("maint", "D"), ("backup", "H")):
        apache.apply("a", ("b", {"state": state}))
        assert (apache.worker("b").flags, apache.worker("b").route) == (frozenset(flags), "b")
        assert apache.spread(20) == {"a": 20}, state
    apache.apply("a", "b")
    assert set(apache.spread(20)) == {"a", "b"}
    assert apache.generation() == before  # no graceful restart
    assert "loadfactor=1" in apache.stack.live.read_text()  # the file is the source of truth, written
    plan = apache.stack.run("plan")
    assert (plan.exit_code, plan.output) == (0, f"{apache.stack.live}: no changes\n")


def test_a_removed_member_is_disabled_and_comes_back_on_its_worker(apache):
    before = apache.generation()
    apache.apply("a")
    assert (apache.worker("b").flags, apache.worker("b").route) == (frozenset("D"), "")  # it cannot be deleted
    assert apache.spread(20) == {"a": 20}
    assert apache.stack.run("plan").output == f"{apache.stack.live}: no changes\n"  # a leftover is not drift
    apache.apply("a", "b")  # back on its URL: the same worker, enabled again
    assert set(apache.spread(20)) == {"a", "b"} and apache.generation() == before
    assert [w.route for w in apache.manager.read()["app"].workers] == ["a", "b"]


def spread(port: int, host: str, n: int = 30) -> Counter:
    """Which backends answer ``n`` fresh connections to VirtualHost ``host`` of listener ``port``."""
    answers = [http_get(f"http://127.0.0.1:{port}/", headers={"Host": host}) for _ in range(n)]
    return Counter(r.headers.get("x-backend") or f"status {r.status}" for r in answers)


def test_a_new_member_takes_traffic_in_every_virtual_host_without_a_graceful(apache):
    """Each VirtualHost keeps its own copy of a balancer: lbctl adds the member to each
    (before, a member added through one manager reached that copy only: 503s elsewhere).
    With the old members in maintenance, every request of every listener, on fresh
    connections to any child, must reach the new one; removing it reaches them all too."""
    other = free_port()
    apache.listeners = {"web": {**apache.listeners["web"], "routes": [{"host": "api.example", "pool": "app"}]},
                        "alt": {"address": "127.0.0.1", "port": other, "default_pool": "app"}}
    apache.apply("a", "b", expect="and apache restarted gracefully")  # the new listener and VirtualHost
    hosts = [(apache.stack.port, "www.example"), (apache.stack.port, "api.example"), (other, "www.example")]
    wait_until(lambda: all(set(spread(p, h, 10)) == {"a", "b"} for p, h in hosts), 10, "every VirtualHost to serve")
    before = apache.generation()
    apache.apply("a", "b", "c")
    apache.apply(("a", {"state": "maint"}), ("b", {"state": "maint"}), "c", force=True)
    assert [spread(p, h) for p, h in hosts] == [Counter(c=30)] * 3
    apache.apply("a", "b", force=True)  # c removed, a and b back: in every copy
    assert [set(spread(p, h)) for p, h in hosts] == [{"a", "b"}] * 3
    # not one graceful restart (the parent's generation; under load it may start a child more)
    assert apache.generation()[::2] == before[::2]
    assert apache.stack.run("plan").output == f"{apache.stack.live}: no changes\n"


def test_a_listener_without_a_default_pool_still_serves_its_manager(apache):
    """Its ``/`` answers 503 (mod_alias, which would take the manager's path first): all but that path."""
    apache.listeners = {"web": {"address": "127.0.0.1", "port": apache.stack.port,
                                "routes": [{"path": "/app/", "pool": "app"}]}}
    apache.stack.settings["targets"]["edge"]["probes"] = [{"url": f"http://127.0.0.1:{apache.stack.port}/app/"}]
    apache.stack.write_config()
    apache.apply("a", "b", expect="and apache restarted gracefully")
    before = apache.generation()
    apache.apply("a", ("b", {"weight": 3}))
    assert apache.worker("b").loadfactor == 3.0 and apache.generation()[::2] == before[::2]
    assert [http_get(f"http://127.0.0.1:{apache.stack.port}{path}").status for path in ("/", "/x", "/!lbctl/")] == \
        [503, 503, 503]


def test_a_tls_listener_is_changed_through_its_own_manager_over_tls(apache, tmp_path):
    cert, secure = tmp_path / "cert.pem", free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=shop.example",
                    "-keyout", str(cert), "-out", str(cert), "-days", "1"], check=True, capture_output=True)
    apache.listeners = {**apache.listeners, "secure": {"address": "127.0.0.1", "port": secure, "default_pool": "app",
                                                       "tls": {"cert": str(cert)}}}
    apache.apply("a", "b", expect="and apache restarted gracefully")
    before = apache.generation()
    apache.apply(("a", {"state": "maint"}), "b", "c", force=True)  # c added, a out: in both copies
    tls = Manager(f"127.0.0.1:{secure}", host="lbctl-default.invalid", path=view.MANAGER_PATH, tls=True)
    assert [(w.route, w.flags) for w in tls.read()["app"].workers] == [("a", frozenset("D")), ("b", frozenset()),
                                                                         ("c", frozenset())]
    with requests.Session() as session, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unverified certificate: the test's own
        answers = Counter(session.get(f"https://127.0.0.1:{secure}/", verify=False, timeout=5,
                                      headers={"Connection": "close"}).headers.get("x-backend") for _ in range(20))
    assert set(answers) == {"b", "c"}
    assert apache.generation()[::2] == before[::2]


def test_when_the_spare_slots_are_used_up_a_graceful_renders_fresh_ones(apache, tmp_path):
    with Backend("d") as d:
        apache.backends["d"] = d
        apache.stack.settings["targets"]["edge"]["growth"] = 1
        apache.stack.write_config()
        apache.apply("a", "b", expect="and apache restarted gracefully")  # the options changed: one slot now
        before = apache.generation()
        apache.apply("a", "b", "c")  # the one spare slot
        assert apache.generation() == before
        apache.apply("a", "b", "c", "d", expect="and apache restarted gracefully")  # Apache refuses the add
        assert apache.generation()[2] > before[2]
        wait_until(lambda: set(apache.spread(40)) == {"a", "b", "c", "d"}, 10, "d to take traffic")
        before = apache.generation()
        apache.apply("a", "b", "c")  # a removal needs no slot
        assert apache.generation() == before


def test_a_failing_probe_undoes_the_runtime_change(apache):
    before, text = apache.generation(), apache.stack.live.read_text()
    apache.stack.write_raw({"listeners": {"web": {"address": "127.0.0.1", "port": apache.stack.port,
                                                  "default_pool": "app"}},
                            "pools": {"app": {"health": CHECK, "members": [
                                {"name": n, "address": "127.0.0.1", "port": apache.backends[n].port, "state": "maint"}
                                for n in "ab"]}}})
    result = apache.stack.run("apply", "--force")  # past the removal guard, to the probes
    assert result.exit_code == 1
    assert result.output == (f"lbctl: error: probe http://127.0.0.1:{apache.stack.port}/ failed: status 503 "
                             "(expected 200); undid the runtime change (read back): the previous configuration "
                             "is live again\n")
    assert apache.stack.live.read_text() == text and apache.generation() == before
    assert set(apache.spread(20)) == {"a", "b"}


def test_drift_made_by_hand_is_found_and_put_back_through_balancer_manager(apache):
    before = apache.generation()
    apache.manager.set("app", f"http://127.0.0.1:{apache.backends['b'].port}", "b", 5, "N")
    plan = apache.stack.run("plan")
    assert plan.exit_code == 2
    assert plan.output == (f"{apache.stack.live}: no changes\nedge: drift: running apache differs from "
                           f"{apache.stack.live}: balancer://app member http://127.0.0.1:{apache.backends['b'].port} "
                           "loadfactor 5 (file 1), status 'Init Drn Ok' (file enabled) in VirtualHost "
                           f"lbctl-default.invalid on 127.0.0.1:{apache.stack.port}\n")
    result = apache.stack.run("apply")
    assert result.output == f"edge: put back 1 worker that differed from {apache.stack.live} through balancer-manager\n"
    assert apache.stack.run("plan").exit_code == 0 and apache.generation() == before
    assert (apache.worker("b").loadfactor, apache.worker("b").flags) == (1.0, frozenset())


def test_watch_adds_drains_and_weighs_through_balancer_manager(tmp_path):
    """``lbctl watch`` with Consul: a new instance (in a spare slot), a drain (Meta
    lb-state), a weight (Weights) and a failing check take no graceful; the file follows."""
    with running_world(tmp_path, kind="apache", backends="abc") as world:
        manager = apache_ctl.config_generation

        def generation() -> int:
            return manager(world.stack.settings["targets"]["edge"]["manager"])

        first = generation()
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 15, "app-b to take traffic")
        assert generation() == first
        world.register("b", meta={"lb-state": "drain"})
        wait_until(lambda: world.serves({"a"}), 15, "app-b to be drained")
        world.register("b", weights={"Passing": 4, "Warning": 1})
        wait_until(lambda: world.stack.spread(30)["b"] >= 15, 15, "app-b to take four times a's share")
        world.consul.set_service_health("app-a", "critical")
        wait_until(lambda: world.serves({"b"}), 15, "app-a to be taken out")
        assert generation() == first  # none of those restarted apache
        wait_until(lambda: "loadfactor=4" in world.stack.live.read_text(), 10, "the file write (write_delay)")
        world.register("c")
        wait_until(lambda: world.serves({"b", "c"}), 15, "app-c to take traffic")
        assert generation() == first
        assert world.logged("through the runtime API, without a reload")
        # the watch may be writing a later round's file: no drift once it has
        wait_until(lambda: json.loads(world.stack.run("status", "--json").output)[0]["drift"] == [], 10,
                   "status to show no drift")


def test_a_change_of_options_with_the_members_takes_a_graceful(apache):
    """The model kept for the file is used only while rendering it gives the file again."""
    before = apache.generation()
    apache.stack.settings["targets"]["edge"]["threads_per_child"] = 20
    apache.stack.write_config()
    apache.apply("a", ("b", {"weight": 2}), expect="and apache restarted gracefully")
    assert "ThreadsPerChild 20" in apache.stack.live.read_text() and apache.generation()[2] > before[2]
    assert apache.worker("b").loadfactor == 2.0


def test_the_page_reads_each_worker_from_the_listeners_balancer_manager(apache):
    from lbctl.session import Session
    apache.apply("a", ("b", {"state": "maint"}))
    session = Session.configured(str(apache.stack.config_path), None)
    target = session.target(session.selected[0])
    live = target.live_members()["app"]
    port = {name: apache.backends[name].port for name in ("a", "b")}
    assert {k: v["live"] for k, v in live.items()} == {f"127.0.0.1:{port['a']}": "up",
                                                        f"127.0.0.1:{port['b']}": "maint"}
