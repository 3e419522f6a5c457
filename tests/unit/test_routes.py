"""Routes services declare (Meta lb-route, lb-listener): validation, resolution,
the one order every target renders, the grace, the guard and the gauges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from lbctl import config, guard, inventory, model, validate
from lbctl.config.watch import watch as watch_settings
from lbctl.discovery import consul_model as cm, merge, routes
from lbctl.errors import ConfigError
from lbctl.render import render
from lbctl.targets.haproxy import cfg
from lbctl.targets.apache import target as apache_target
from lbctl.targets.nginx import target as nginx_target, view as nginx_view
from lbctl.watch.metrics import Metrics


def entry(sid: str, meta: dict | None = None, index: int | None = 10, port: int = 9000) -> dict:
    svc = {"ID": sid, "Service": sid.split("-")[0], "Address": "127.0.0.1", "Port": port, "Meta": meta or {}}
    if index is not None:
        svc["CreateIndex"] = index
    return {"Node": {"Node": "n1", "Address": "127.0.0.1"}, "Service": svc, "Checks": []}


def parts(**listener) -> inventory.Parts:
    web = {"address": "127.0.0.1", "port": 8080, "default_pool": "app",
           "accept_routes": ["*.apps.example.com", "api.example.com"], **listener}
    return inventory.parts({"listeners": {"web": web, "db": {"port": 5432, "mode": "tcp", "default_pool": "pg"}},
                            "pools": {"app": {}, "pg": {}}})


def resolved(entries: dict, p: inventory.Parts | None = None):
    desired, problems = merge.from_entries(p or parts(), entries, cm.Policy())
    web = next(lst for lst in desired.listeners if lst.name == "web")
    return [(r.host, r.path, r.pool, r.service) for r in web.routes], problems


# -- validation ------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["*.apps.example.com", "api.example.com", "API.Example.com"])
def test_host_patterns(value):
    assert validate.host_patterns([value], "x") == (value.lower(),)


@pytest.mark.parametrize("value", ["*", "*.", "*.*.example.com", "a.*.example.com", "*example.com", "-a.com",
                                   "a..com", "a.com.", "a b.com", "a.com;", "1.2.3.4", "", 7, None, ["a.com"]])
def test_bad_host_patterns_are_one_line_errors(value):
    with pytest.raises(ConfigError, match=r"^listeners\.web\.accept_routes\[0\]: must be an RFC 1123 host name") as exc:
        inventory.parts({"listeners": {"web": {"port": 80, "accept_routes": [value]}}})
    assert "\n" not in str(exc.value)


def test_accept_routes_needs_http_and_may_stand_alone():
    with pytest.raises(ConfigError, match=r"listeners\.db\.accept_routes: tcp listeners cannot route by host"):
        inventory.parts({"listeners": {"db": {"port": 5432, "mode": "tcp", "default_pool": "pg",
                                              "accept_routes": ["a.com"]}}, "pools": {"pg": {}}})
    lst = inventory.parts({"listeners": {"web": {"port": 80, "accept_routes": ["b.com", "a.com", "a.com"]}}}).listeners[0]
    assert lst.accept_routes == ("a.com", "b.com") and lst.default_pool is None


@pytest.mark.parametrize("value", [
    "a.apps.example.com/x;y", "a.apps.example.com/x y", "a.apps.example.com/../x", "a.apps.example.com/./x",
    "a.apps.example.com//x", "a.apps.example.com/x%2f", "a.apps.example.com/x{", "a.apps.example.com/x\nserver e",
    "a.apps.example.com\nuse_backend evil", "a.apps.example.com/x'", "a.apps.example.com/$host", "ex ample.com",
    "a.apps.example.com:80/x", "*.*.apps.example.com", "a.apps.example.com/x#y", "/only/path", "",
    "a.apps.example.com/x\\y", "a.apps.example.com/x?y", "a.apps.example.com/é"])
def test_a_hostile_route_is_skipped_with_one_warning_naming_service_and_value(value):
    got, problems = resolved({"shop": [entry("shop-1", {"lb-route": f"{value},ok.apps.example.com/ok/"})]})
    assert got == [("ok.apps.example.com", "/ok/", "shop", "shop")]  # the good one still serves
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("consul service shop: Meta.lb-route: ") and "skipped" in problems[0]


@pytest.mark.parametrize("meta, warning", [
    ({"lb-route": 7}, "must be text"),
    ({"lb-route": "a.apps.example.com/" + "x" * 600}, "must be text of at most 512"),
    ({"lb-route": "a.apps.example.com", "lb-listener": "web\nfrontend x"}, "Meta.lb-listener: must be a name"),
])
def test_unusable_values_skip_the_routes_of_that_service_only(meta, warning):
    got, problems = resolved({"shop": [entry("shop-1", meta)],
                              "cart": [entry("cart-1", {"lb-route": "cart.apps.example.com"})]})
    assert got == [("cart.apps.example.com", None, "cart", "cart")]
    assert len(problems) == 1 and warning in problems[0] and "\n" not in problems[0]


def test_many_routes_are_capped():
    value = ",".join(f"s{i}.apps.example.com" for i in range(routes.MAX_ROUTES + 3))
    got, problems = resolved({"shop": [entry("shop-1", {"lb-route": value})]})
    assert len(got) == routes.MAX_ROUTES and "more than 16 routes" in problems[0]


# -- resolution -----------------------------------------------------------------------

def test_routes_from_services_join_the_listener_in_the_one_order():
    got, problems = resolved({
        "shop": [entry("shop-1", {"lb-route": "shop.apps.example.com/cart/, shop.apps.example.com"})],
        "wild": [entry("wild-1", {"lb-route": "*.x.apps.example.com/q/,*.apps.example.com"})],
        "api": [entry("api-1", {"lb-route": "api.example.com/v1/"})]}, parts(routes=[{"path": "/static/", "pool": "app"}]))
    assert problems == []
    assert got == [("api.example.com", "/v1/", "api", "api"), ("shop.apps.example.com", "/cart/", "shop", "shop"),
                   ("shop.apps.example.com", None, "shop", "shop"), ("*.x.apps.example.com", "/q/", "wild", "wild"),
                   ("*.apps.example.com", None, "wild", "wild"), (None, "/static/", "app", None)]


@pytest.mark.parametrize("value, reason", [
    ("evil.com", "host evil.com is outside every listener's accept_routes"),
    ("apps.example.com", "outside every listener's accept_routes"),  # *. is one label or more
    ("v1.api.example.com", "outside"),
])
def test_a_route_outside_every_pattern_is_refused(value, reason):
    got, problems = resolved({"shop": [entry("shop-1", {"lb-route": value})]})
    assert got == [] and problems == [f"consul service shop: route {value} refused: " + problems[0].split(": ", 2)[2]]
    assert reason in problems[0]


def test_the_inventory_always_wins():
    inv = parts(routes=[{"host": "api.example.com", "path": "/v1/", "pool": "app"}])
    got, problems = resolved({"api": [entry("api-1", {"lb-route": "api.example.com/v1/,api.example.com/v2/"}, 1)]}, inv)
    assert ("api.example.com", "/v1/", "app", None) in got and ("api.example.com", "/v2/", "api", "api") in got
    assert problems == ["consul service api: route api.example.com/v1/ refused: listener web serves it from the "
                        "inventory's route"]


def test_the_service_registered_first_keeps_a_contested_route():
    claim = "shop.apps.example.com/cart/"
    # "zeta" registered first (lower CreateIndex) wins over "alpha", whatever the names
    got, problems = resolved({"alpha": [entry("alpha-1", {"lb-route": claim}, 20)],
                              "zeta": [entry("zeta-1", {"lb-route": claim}, 7), entry("zeta-2", index=30, port=9001)]})
    assert got == [("shop.apps.example.com", "/cart/", "zeta", "zeta")]
    assert problems == [f"consul service alpha: route {claim} refused: listener web serves it from service zeta, "
                        "registered first"]
    got, _ = resolved({"b": [entry("b-1", {"lb-route": claim}, None)], "a": [entry("a-1", {"lb-route": claim}, None)]})
    assert got[0][2] == "a"  # no CreateIndex at all: by name


def test_lb_listener_picks_among_opted_in_listeners():
    two = inventory.parts({"listeners": {
        "a": {"port": 80, "accept_routes": ["*.example.com"]},
        "b": {"port": 81, "accept_routes": ["*.example.com"]},
        "plain": {"port": 82, "default_pool": "app"}}, "pools": {"app": {}}})
    desired, problems = merge.from_entries(two, {
        "s1": [entry("s1-1", {"lb-route": "s1.example.com"})],
        "s2": [entry("s2-1", {"lb-route": "s2.example.com", "lb-listener": "b"})],
        "s3": [entry("s3-1", {"lb-route": "s3.example.com", "lb-listener": "plain"})],
        "s4": [entry("s4-1", {"lb-route": "s4.other.com", "lb-listener": "b"})]}, cm.Policy())
    by = {lst.name: [r.pool for r in lst.routes] for lst in desired.listeners}
    assert by == {"a": ["s1"], "b": ["s2"], "plain": []}
    assert problems == ["consul service s3: route s3.example.com refused: lb-listener plain is not a listener with "
                        "accept_routes",
                        "consul service s4: route s4.other.com refused: listener b accepts only *.example.com"]


def test_a_pool_of_a_tcp_listener_cannot_take_a_route():
    got, problems = resolved({"pg": [entry("pg-1", {"lb-route": "pg.apps.example.com"})]})
    assert got == [] and "its pool pg serves a tcp listener" in problems[0]


def test_the_route_table_names_the_source():
    listeners, _ = routes.resolve(parts(routes=[{"path": "/s/", "pool": "app"}]).listeners,
                                  [routes.Claim("shop", (("shop.apps.example.com", "/c/"),))])
    assert routes.table(listeners) == [
        {"listener": "web", "route": "shop.apps.example.com/c/", "pool": "shop", "source": "service shop"},
        {"listener": "web", "route": "/s/", "pool": "app", "source": "inventory"}]


# -- one order for every target ------------------------------------------------------

HOSTS = ["a.apps.example.com", "b.apps.example.com", "*.apps.example.com", "*.x.apps.example.com", None]
PATHS = [None, "/", "/a", "/a/", "/a/b/", "/b/"]
REQUEST_HOSTS = ["a.apps.example.com", "b.apps.example.com", "c.apps.example.com", "q.x.apps.example.com",
                 "other.com"]
REQUEST_PATHS = ["/", "/a", "/a/", "/a/b/c", "/ab", "/b/x", "/c"]


def haproxy_pick(lst: model.Listener, host: str, path: str) -> str | None:
    """HAProxy's use_backend: the first route (in the rendered order) that matches."""
    for r in lst.routes:
        if (r.host is None or model.covers(r.host, host)) and path.startswith(r.path or "/"):
            return r.pool
    return lst.default_pool


def nginx_pick(lst: model.Listener, host: str, path: str) -> str | None:
    """nginx: the server by exact name, then the longest wildcard, else the default;
    then the location by longest prefix."""
    servers = nginx_view._virtual_servers(lst, {p: model.Pool(p) for p in ["app", *(r.pool for r in lst.routes)]}, set())
    exact = [s for s in servers if s.host == host]
    wild = sorted((s for s in servers if s.host and s.host.startswith("*.") and model.covers(s.host, host)),
                  key=lambda s: -len(s.host))
    server = (exact or wild or [s for s in servers if s.host is None])[0]
    location = max((loc for loc in server.locations if path.startswith(loc.path)), key=lambda loc: len(loc.path))
    return location.pool.name if location.pool else None


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(HOSTS), st.sampled_from(PATHS)), min_size=1, max_size=8, unique=True))
def test_nginx_sends_every_request_where_haproxy_does(pairs):
    pairs = [(h, p) for h, p in pairs if h is not None or p is not None]
    lst = model.Listener("web", 80, default_pool="app", routes=tuple(sorted(
        (model.Route(f"p{i}", h, p) for i, (h, p) in enumerate(pairs)), key=model.Route.sort_key)))
    for host in REQUEST_HOSTS:
        for path in REQUEST_PATHS:
            assert nginx_pick(lst, host, path) == haproxy_pick(lst, host, path), (host, path)


def test_the_order_is_total_and_documented():
    made = [model.Route("p", h, p) for h in HOSTS for p in PATHS if h or p]
    keys = [r.sort_key() for r in made]
    assert len(set(keys)) == len(keys)  # no two routes tie
    ordered = sorted(made, key=model.Route.sort_key)
    assert [(r.host, r.path) for r in ordered[:2]] == [("a.apps.example.com", "/a/b/"), ("a.apps.example.com", "/a/")]
    assert ordered.index(model.Route("p", "*.x.apps.example.com")) < ordered.index(model.Route("p", "*.apps.example.com", "/a/b/"))
    assert ordered[-1] == model.Route("p", None, "/")


def test_haproxy_and_nginx_render_service_routes_and_read_them_back():
    desired, _ = merge.from_entries(parts(), {
        "shop": [entry("shop-1", {"lb-route": "shop.apps.example.com/cart/"})],
        "wild": [entry("wild-1", {"lb-route": "*.x.apps.example.com"})]}, cm.Policy())
    text = render(desired, "haproxy", config.options("haproxy"))
    assert ("use_backend shop if { req.hdr(host),field(1,:) -i shop.apps.example.com } { path_beg /cart/ }"
            "  # service shop\n") in text
    assert "use_backend wild if { req.hdr(host),field(1,:) -m end -i .x.apps.example.com }  # service wild\n" in text
    assert cfg.served(text).routed == {"shop", "wild"} == guard.served(desired).routed
    text = render(desired, "nginx", config.options("nginx"))
    assert "server_name *.x.apps.example.com;" in text and "server_name shop.apps.example.com;" in text
    assert nginx_target.served(text).routed == {"shop", "wild"}
    http = model.replace(desired, listeners=tuple(lst for lst in desired.listeners if lst.mode == "http"))
    text = render(http, "apache", config.options("apache"))  # apache serves no tcp listener
    assert apache_target.served(text).routed == {"shop", "wild"}
    assert set(apache_target.served(text).pools) >= {"shop", "wild"}


def test_many_long_host_names_size_nginx_hash():
    servers = [nginx_view.VirtualServer(model.Listener("w", 80), f"service-{i:04}.apps.example.com", ()) for i in range(1000)]
    assert nginx_view.names_hash(servers) == (4096, 64)
    assert nginx_view.names_hash(servers[:3][:0]) is None


# -- the grace, the guard, the settings and the gauges ----------------------------------

def test_a_route_outlives_its_last_instance_for_the_grace():
    book, claim = routes.Book(300), routes.Claim("shop", (("s.example.com", None),))
    assert book.update("shop", claim, 0.0)
    assert not book.gone("shop", 10.0) and book.claims == {"shop": claim}  # kept: its pool empties (503)
    assert book.next_expiry() == 310.0 and not book.expire(309.0)
    assert book.update("shop", claim, 100.0) is False and book.next_expiry() is None  # back within the grace
    book.gone("shop", 200.0)
    assert book.expire(500.0) and book.claims == {}
    none = routes.Book(0)
    none.update("shop", claim, 0.0)
    assert none.gone("shop", 1.0) and none.claims == {}


def test_route_grace_setting():
    assert watch_settings({}).route_grace_ms == 300_000
    assert watch_settings({"route_grace": 0}).route_grace_ms == 0
    assert watch_settings({"route_grace": "30s"}).route_grace_ms == 30_000
    with pytest.raises(ConfigError, match=r"^watch\.route_grace: must be"):
        watch_settings({"route_grace": "soon"})


def served(routed: dict[str, int]) -> guard.Served:
    return guard.Served(frozenset({"web"}), {p: frozenset(f"m{i}" for i in range(n)) for p, n in routed.items()},
                        frozenset(routed))


def test_the_guard_lets_one_service_go_but_not_many():
    before = served({"a": 1, "b": 1, "c": 1, "d": 1})
    assert guard.refusals(before, served({"a": 0, "b": 1, "c": 1, "d": 1}), guard.Policy()) == []
    assert guard.refusals(before, served({"b": 1, "c": 1, "d": 1}), guard.Policy()) == []
    assert guard.refusals(before, served({"c": 1, "d": 1}), guard.Policy()) == []  # 2 of 4: not more than 50%
    problems = guard.refusals(before, served({"d": 1}), guard.Policy())
    assert problems == ["3 of 4 services with routes of their own would stop serving (a, b, c), more than "
                        "max_removal 50%"]
    assert guard.refusals(before, served({"a": 0, "b": 0, "c": 0, "d": 1}), guard.Policy()) == problems
    assert guard.refusals(before, served({"d": 1}), guard.Policy(allow=frozenset({"a", "b"}))) == []


@pytest.mark.parametrize("kind", ["haproxy", "nginx", "apache"])
def test_a_pool_the_inventory_also_routes_to_is_guarded_as_any_pool(kind):
    inv = parts(default_pool="app", routes=[{"path": "/s/", "pool": "api"}])
    inv = inventory.Parts(inv.pool_defaults, {**inv.pools, "api": {}}, inv.listeners)
    desired, _ = merge.from_entries(inv, {
        "app": [entry("app-1", {"lb-route": "a.apps.example.com"})],
        "api": [entry("api-1", {"lb-route": "b.apps.example.com"})],
        "shop": [entry("shop-1", {"lb-route": "c.apps.example.com"})]}, cm.Policy())
    if kind == "apache":  # it serves no tcp listener
        desired = model.replace(desired, listeners=tuple(lst for lst in desired.listeners if lst.mode == "http"))
    text = render(desired, kind, config.options(kind))
    read = {"haproxy": cfg.served, "nginx": nginx_target.served, "apache": apache_target.served}[kind](text)
    assert read.routed == guard.served(desired).routed == {"shop"} == model.service_pools(desired.listeners)


def test_the_route_gauges():
    metrics = Metrics()
    listeners, refused = routes.resolve(parts(routes=[{"path": "/s/", "pool": "app"}]).listeners, [
        routes.Claim("a", (("a.apps.example.com", None),), created=1),
        routes.Claim("b", (("a.apps.example.com", None), ("x.com", None)), created=2)])
    metrics.routes(listeners, refused)
    text = metrics.text().decode()
    assert 'lbctl_routes{source="inventory"} 1.0' in text and 'lbctl_routes{source="service"} 1.0' in text
    assert 'lbctl_routes_refused{reason="conflict"} 1.0' in text
    assert 'lbctl_routes_refused{reason="not-accepted"} 1.0' in text


def test_create_index_is_read_from_the_health_entries():
    assert "CreateIndex" in cm.slim([entry("a-1", index=42)])[0]["Service"]
    assert routes.created([entry("a-1", index=42), entry("a-2", index=7)]) == 7
    assert routes.created([entry("a-1", index=None), {"Service": {"CreateIndex": "1"}}]) == routes.NO_INDEX


# -- the watch controller ----------------------------------------------------------------

class FakeWatcher:
    def __init__(self, entries: dict) -> None:
        self.entries = entries

    def snapshot(self, names=None) -> dict:
        return {n: e for n, e in self.entries.items() if names is None or n in names}


def test_the_controller_keeps_a_gone_service_s_route_for_the_grace_then_drops_it(caplog):
    from types import SimpleNamespace

    from lbctl.watch.controller import Controller

    now = [0.0]
    ctl = Controller(lambda: None, clock=lambda: now[0])
    p = parts()
    ctl.setup = SimpleNamespace(parts=p, static=merge.static_pools(p), consul=SimpleNamespace(include_warning=False),
                                watch=SimpleNamespace(route_grace_ms=60_000))
    ctl.book = routes.Book(60)
    shop = [entry("shop-1", {"lb-route": "shop.apps.example.com"}, 5)]
    ctl.watcher = FakeWatcher({"app": [entry("app-1")], "shop": shop,
                               "late": [entry("late-1", {"lb-route": "shop.apps.example.com"}, 9)]})

    def web(desired):
        return next(lst for lst in desired.listeners if lst.name == "web")

    first = ctl.build({"*"})
    assert [r.pool for r in web(first).routes] == ["shop"]
    assert caplog.text.count("consul service late: route shop.apps.example.com refused") == 1
    # a member change, no route change: the incremental path keeps the listeners as they are
    ctl.watcher.entries["shop"] = shop + [entry("shop-2", port=9001, index=20)]
    second = ctl.build({"shop"})
    assert second.listeners is first.listeners and len(next(x for x in second.pools if x.name == "shop").members) == 2
    ctl.build({"late"})
    assert caplog.text.count("consul service late: route shop.apps.example.com refused") == 1  # warned once
    # the last instance goes: the route stays, its pool empty (503), for the grace
    del ctl.watcher.entries["shop"]
    now[0] = 10.0
    third = ctl.build({"shop"})
    assert [r.pool for r in web(third).routes] == ["shop"]
    assert next(x for x in third.pools if x.name == "shop").members == ()
    now[0] = 69.0
    assert not ctl.grace_due()
    now[0] = 70.0
    assert ctl.grace_due()
    fourth = ctl.build(set())  # the grace ran out: the route goes, and the waiting claim takes it
    assert [(r.pool, r.service) for r in web(fourth).routes] == [("late", "late")]
    assert not ctl.grace_due()
    assert b'lbctl_routes_refused{reason="conflict"} 0.0' in ctl.metrics.text()


def test_lbctl_routes_lists_an_inventory_s_routes(tmp_path):
    import json

    import yaml
    from click.testing import CliRunner

    from lbctl.cli import cli

    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump({"listeners": {"web": {"port": 80, "default_pool": "app", "accept_routes": [
        "*.apps.example.com"], "routes": [{"host": "*.x.example.com", "pool": "app"}, {"path": "/s/", "pool": "app"}]}},
        "pools": {"app": {}}}))
    out = CliRunner().invoke(cli, ["routes", "-i", str(path)])
    assert out.exit_code == 0, out.output
    assert out.output == ("LISTENER  ROUTE            POOL  SOURCE\n"
                          "web       *.x.example.com  app   inventory\n"
                          "web       /s/              app   inventory\n")
    out = CliRunner().invoke(cli, ["routes", "-i", str(path), "--json"])
    assert json.loads(out.output) == {"refused": [], "routes": [
        {"listener": "web", "route": "*.x.example.com", "pool": "app", "source": "inventory"},
        {"listener": "web", "route": "/s/", "pool": "app", "source": "inventory"}]}


def test_a_health_check_host_is_a_host_name_not_a_pattern():
    with pytest.raises(ConfigError, match=r"^pools\.app\.health\.host: must be an RFC 1123 host name"):
        inventory.from_raw({"listeners": {"web": {"port": 80, "default_pool": "app"}},
                            "pools": {"app": {"health": {"host": "*.example.com"}}}})
