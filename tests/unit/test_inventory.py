import random

import pytest

from lbctl import config, inventory
from lbctl.errors import ConfigError
from lbctl.render import render
from tests.helpers import EXAMPLE, example_raw, minimal_raw


def error_of(raw) -> str:
    with pytest.raises(ConfigError) as err:
        inventory.from_raw(raw)
    return str(err.value)


def test_example_loads_sorted():
    desired = inventory.load(EXAMPLE)
    assert [p.name for p in desired.pools] == sorted(p.name for p in desired.pools)
    assert [lst.name for lst in desired.listeners] == ["admin", "postgres", "public"]
    web = next(p for p in desired.pools if p.name == "web")
    assert [m.name for m in web.members] == ["web-1", "web-2", "web-3"]
    assert web.balance == "leastconn" and web.health.path == "/healthz" and web.connect_timeout_ms == 2000


def test_pool_health_merges_over_defaults():
    api = next(p for p in inventory.load(EXAMPLE).pools if p.name == "api")
    assert (api.health.type, api.health.path, api.health.host, api.health.interval_ms) == \
        ("http", "/api/health", "api.example.com", 2000)


def test_member_without_name_is_named_after_its_endpoint():
    static = next(p for p in inventory.load(EXAMPLE).pools if p.name == "static")
    assert [m.name for m in static.members] == ["10.0.4.31_8081", "10.0.4.32_8081"]


def test_input_order_does_not_change_the_output():
    raw = example_raw()
    expected = {k: render(inventory.from_raw(raw), k, config.options(k)) for k in ("haproxy", "nginx")}
    rng = random.Random(7)
    for _ in range(5):
        shuffled = example_raw()
        shuffled["pools"] = dict(rng.sample(list(shuffled["pools"].items()), len(shuffled["pools"])))
        for pool in shuffled["pools"].values():
            rng.shuffle(pool["members"])
        for lst in shuffled["listeners"].values():
            rng.shuffle(lst.get("routes", []))
        for kind, text in expected.items():
            assert render(inventory.from_raw(shuffled), kind, config.options(kind)) == text


def test_routes_most_specific_first():
    public = next(lst for lst in inventory.load(EXAMPLE).listeners if lst.name == "public")
    assert [(r.host, r.path) for r in public.routes] == [
        ("api.example.com", None), ("shop.example.com", "/cart/"), (None, "/static/")]


@pytest.mark.parametrize("mutate,expected", [
    (lambda r: r["pools"]["web"]["members"][2].update(port="8080"),
     "pools.web.members[2].port: must be an integer from 1 to 65535 (got '8080')"),
    (lambda r: r["pools"]["web"]["members"][1].update(address="10.0.0.1;"),
     "pools.web.members[1].address: must be an IPv4 or IPv6 address or an RFC 1123 host name (got '10.0.0.1;')"),
    (lambda r: r["pools"]["web"]["members"][0].update(colour="red"),
     "pools.web.members[0]: unknown key 'colour'; allowed: name, address, port, weight, state, tags, meta"),
    (lambda r: r["pools"]["web"]["members"][0].pop("port"), "pools.web.members[0].port: is required"),
    (lambda r: r["pools"]["web"]["members"][0].update(weight=0), "pools.web.members[0].weight: must be an integer from 1 to 256 (got 0)"),
    (lambda r: r["pools"]["web"]["members"][0].update(state="off"), "pools.web.members[0].state: must be one of enabled, drain, maint, backup (got 'off')"),
    (lambda r: r["pools"]["web"]["members"][1].update(name="web-1"), "pools.web.members[1].name: repeats the name of pools.web.members[0] (got 'web-1')"),
    (lambda r: r["pools"]["web"]["members"][1].update(address="10.0.1.11"), "pools.web.members[1]: 10.0.1.11:8080 repeats pools.web.members[0]"),
    (lambda r: r["pools"]["web"].update(balance="fastest"), "pools.web.balance: must be one of roundrobin, leastconn, source, random (got 'fastest')"),
    (lambda r: r["pools"]["api"]["health"].update(path="health"), "pools.api.health.path: must be a URL path"),
    (lambda r: r["pools"].update({"bad name": {}}), "pools['bad name']: must be a name"),
    (lambda r: r["listeners"]["public"].update(default_pool="nope"), "listeners.public.default_pool: no pool named 'nope'"),
    (lambda r: r["listeners"]["public"]["routes"][0].update(pool="nope"), "listeners.public.routes[0].pool: no pool named 'nope'"),
    (lambda r: r["listeners"]["public"]["routes"].append({"pool": "web"}), "listeners.public.routes[3]: needs a host, a path or both"),
    (lambda r: r["listeners"]["postgres"].update(routes=[{"path": "/", "pool": "db"}]), "listeners.postgres.routes: tcp listeners cannot route"),
    (lambda r: r["listeners"]["admin"].update(port=18080), "listeners.public: 127.0.0.1:18080 clashes with listeners.admin"),
    (lambda r: r["listeners"]["admin"].update(default_pool="db"), "listeners.postgres: pool 'db' is used by both http and tcp listeners"),
    (lambda r: r["listeners"]["admin"].update(address="example.com"), "listeners.admin.address: must be an IPv4 or IPv6 address"),
    (lambda r: r.update(extra=1), "inventory: unknown key 'extra'; allowed: version, defaults, listeners, pools"),
    (lambda r: r.update(version=2), "version: must be 1 (got 2)"),
    (lambda r: r["defaults"]["pool"].update(members=[]), "defaults.pool: unknown key 'members'"),
    (lambda r: r["pools"]["web"].update(members={"a": 1}), "pools.web.members: must be a list"),
])
def test_errors_name_the_path_and_the_reason(mutate, expected):
    raw = example_raw()
    mutate(raw)
    message = error_of(raw)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "inv.yml"
    bad.write_text("pools:\n  web:\n    members:\n      - {address: 10.0.0.1, port: 0}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: pools.web.members\[0\].port: must be an integer"):
        inventory.load(bad)


def test_yaml_syntax_errors_give_the_line(tmp_path):
    bad = tmp_path / "inv.yml"
    bad.write_text("pools:\n  web: [\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: not valid YAML at line 3"):
        inventory.load(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read inventory: No such file"):
        inventory.load(tmp_path / "none.yml")


def test_json_inventories_load_like_yaml(tmp_path):
    import json

    path = tmp_path / "inv.json"
    path.write_text(json.dumps(minimal_raw()))
    assert inventory.load(path) == inventory.from_raw(minimal_raw())


def test_bools_are_not_numbers():
    raw = minimal_raw()
    raw["pools"]["app"]["health"] = {"rise": True}
    assert "pools.app.health.rise: must be an integer" in error_of(raw)
    raw["pools"]["app"]["health"] = {"rise": 1}
    assert inventory.from_raw(raw).pools[0].health.rise == 1


def test_a_missing_required_key_is_a_clear_error():
    raw = minimal_raw()
    del raw["listeners"]["web"]["port"]
    assert error_of(raw) == "listeners.web.port: is required"
    raw = minimal_raw()
    raw["listeners"]["web"]["routes"] = [{"host": "a.example.com"}]
    assert error_of(raw) == "listeners.web.routes[0].pool: is required"
