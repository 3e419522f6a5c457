"""Routes services declare, end to end: the Consul emulator (its connection cap on),
lbctl, and real HAProxy and nginx answering requests by their Host header."""

from __future__ import annotations

import contextlib

import consul as pyconsul
import pytest

from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.support import requires_haproxy, requires_nginx
from lbctl_testkit.support.backends import Backend
from lbctl_testkit.support.procs import http_get, wait_until
from lbctl_testkit.support.stack import Stack
from lbctl_testkit.support.world import running_world

pytestmark = pytest.mark.integration
PATTERN = "*.apps.example.test"


def routed(stack: Stack, host: str, path: str = "/") -> str:
    """Which backend answered a request for ``host`` (or ``status N``)."""
    r = http_get(f"http://127.0.0.1:{stack.port}{path}", headers={"Host": host})
    return r.headers.get("x-backend") or f"status {r.status}"


def test_the_emulator_returns_create_and_modify_index_as_consul_does():
    with ConsulEmulator() as consul:
        consul.add_service("shop", service_id="shop-1", address="127.0.0.1", port=81, meta={"lb-route": "a.test"})
        consul.add_service("shop", service_id="shop-2", address="127.0.0.1", port=82)
        health = pyconsul.Consul(port=consul.port).health
        first = {e["Service"]["ID"]: e["Service"] for e in health.service("shop")[1]}
        assert 0 < first["shop-1"]["CreateIndex"] == first["shop-1"]["ModifyIndex"] < first["shop-2"]["CreateIndex"]
        consul.add_service("shop", service_id="shop-1", address="127.0.0.1", port=81, meta={"lb-route": "b.test"})
        again = {e["Service"]["ID"]: e["Service"] for e in health.service("shop")[1]}["shop-1"]
        assert again["CreateIndex"] == first["shop-1"]["CreateIndex"] < again["ModifyIndex"]


@pytest.fixture(params=["haproxy", "nginx"])
def kind(request):
    for mark in requires_haproxy if request.param == "haproxy" else requires_nginx:
        request.applymarker(mark)
    return request.param


def world(ctx: contextlib.ExitStack, tmp_path, kind: str, services: list[str]):
    """The emulator, backends a, s and t, and a stack whose listener accepts PATTERN and
    whose default pool is service ``app`` (instance on a), watching ``services`` too."""
    consul = ctx.enter_context(ConsulEmulator())
    backends = [ctx.enter_context(Backend(n)) for n in "ast"]
    stack = Stack(tmp_path, kind)
    raw = stack.inventory([])
    raw["listeners"]["web"]["accept_routes"] = [PATTERN]
    stack.write_raw(raw)
    stack.use_consul(consul.port, services=["app", *services])
    consul.add_service("app", service_id="app-a", address="127.0.0.1", port=backends[0].port)
    return consul, stack, backends


def test_a_service_declares_its_route_and_a_request_with_that_host_reaches_it(tmp_path, kind):
    with contextlib.ExitStack() as ctx:
        consul, stack, (a, s, t) = world(ctx, tmp_path, kind, ["shop", "late"])
        consul.add_service("shop", service_id="shop-1", address="127.0.0.1", port=s.port,
                           meta={"lb-route": "shop.apps.example.test/cart/"})
        # registered later: its claim on the same route is refused, its other route serves
        consul.add_service("late", service_id="late-1", address="127.0.0.1", port=t.port,
                           meta={"lb-route": "shop.apps.example.test/cart/,late.apps.example.test,evil.test/x"})
        result = stack.run("apply")
        assert result.exit_code == 0, result.output
        assert ("lbctl: warning: consul service late: route shop.apps.example.test/cart/ refused: listener web "
                "serves it from service shop, registered first\n") in result.stderr
        assert "route evil.test/x refused: host evil.test is outside every listener's accept_routes" in result.stderr
        ctx.enter_context(stack.running())
        wait_until(lambda: routed(stack, "other.example.test") == "a", 10, "the first health checks to pass")
        assert routed(stack, "shop.apps.example.test", "/cart/x") == "s"
        assert routed(stack, "SHOP.apps.example.test:80", "/cart/") == "s"
        assert routed(stack, "shop.apps.example.test", "/other") == "a"  # the listener's default pool
        assert routed(stack, "late.apps.example.test", "/cart/") == "t"
        assert routed(stack, "other.example.test", "/cart/") == "a"
        listing = stack.run("routes")
        assert listing.exit_code == 0, listing.output
        assert "web       shop.apps.example.test/cart/  shop  service shop\n" in listing.stdout
        assert ("conflict: consul service late: route shop.apps.example.test/cart/ refused: listener web serves it "
                "from service shop, registered first\n") in listing.stdout
        status = stack.run("status", "--routes")
        assert status.exit_code == 0 and "conflict: consul service late" in status.stdout


def test_watch_a_new_route_then_its_grace_then_it_goes(tmp_path):
    with running_world(tmp_path, backends="as", source={"services": ["app", "shop"]}, listener={"accept_routes": [PATTERN]},
                       watch={"route_grace": "4s"}) as w:
        host = "shop.apps.example.test"
        assert routed(w.stack, host) == "a"
        reloads = w.reloads()
        w.consul.add_service("shop", service_id="shop-1", address="127.0.0.1", port=w.backends["s"].port,
                             meta={"lb-route": host})
        wait_until(lambda: routed(w.stack, host) == "s", 15, "the new route to serve")
        assert w.reloads() > reloads  # a new route is a structural change
        w.consul.remove_service("shop-1")
        # the route stays, its pool empty (503), for the grace; then the default pool takes the host again
        wait_until(lambda: routed(w.stack, host) == "status 503", 15, "the route to answer 503")
        assert "# service shop" in w.stack.live.read_text()
        wait_until(lambda: routed(w.stack, host) == "a", 20, "the route to go after its grace")
        assert "# service shop" not in w.stack.live.read_text()
        assert not w.logged("refusing")


def test_many_service_routes_each_reach_their_service(tmp_path, kind):
    """300 services, each with a host of its own, some with a path too: nginx gets a
    server per host (its server-name hash sized for them), HAProxy a rule per route."""
    with contextlib.ExitStack() as ctx:
        names = [f"service-number-{i:03}" for i in range(300)]
        consul, stack, (a, s, t) = world(ctx, tmp_path, kind, names)
        with consul.transaction():
            for i, name in enumerate(names):
                route = f"{name}.apps.example.test" + ("/api/" if i % 2 else "")
                consul.add_service(name, service_id=f"{name}-1", address="127.0.0.1", port=(s if i % 2 else t).port,
                                   meta={"lb-route": route})
        result = stack.run("apply")
        assert result.exit_code == 0, result.output
        assert "lbctl: warning" not in result.stderr
        if kind == "nginx":
            assert "server_names_hash_max_size 2048;" in stack.live.read_text()
        ctx.enter_context(stack.running())
        wait_until(lambda: routed(stack, "other.example.test") == "a", 10, "the first health checks to pass")
        for i in (0, 1, 150, 299):
            host = f"{names[i]}.apps.example.test"
            assert routed(stack, host, "/api/x") == ("s" if i % 2 else "t")
            assert routed(stack, host, "/") == ("a" if i % 2 else "t")  # a path route: the rest is the default's
        listing = stack.run("routes")
        assert listing.stdout.count(" service service-number-") == 300
