"""The AS3 declaration: built from the model, read back, and checked against F5's schema."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from lbctl import inventory, model
from lbctl.cli import cli
from lbctl.errors import ConfigError, ValidationError
from lbctl.targets.bigip import as3
from lbctl.targets.bigip import model as bm
from tests.helpers import EXAMPLE


def example() -> model.Desired:
    return inventory.load(EXAMPLE)


def test_the_example_inventory_is_a_valid_declaration():
    decl = as3.document(example(), "Shop", "lbctl")
    assert as3.errors(decl) == []
    app = decl["Shop"]["lbctl"]
    assert decl["Shop"]["remark"] == "lbctl:owner=lbctl"
    assert app["web"]["monitors"] == [{"use": "web_http"}]
    assert app["web"]["members"][0] == {
        "servicePort": 8080, "serverAddresses": ["10.0.1.11"], "ratio": 10, "priorityGroup": 0,
        "connectionLimit": 200, "adminState": "enable", "shareNodes": False, "remark": "web-1"}
    assert app["db_tcp"] == {"class": "Monitor", "monitorType": "tcp", "interval": 1, "timeout": 3,
                             "remark": "lbctl:owner=lbctl"}
    assert [m["adminState"] for m in app["cart"]["members"]] == ["enable", "offline"]


def test_tenant_common_uses_the_shared_application():
    decl = as3.document(example(), "Common", "lbctl")
    assert decl["Common"]["Shared"]["template"] == "shared"
    assert as3.errors(decl) == []
    assert as3.folder("Common") == "Common/Shared"


def test_a_declaration_reads_back_to_the_same_pools_and_monitors():
    want = bm.wanted(example(), as3.folder("Shop"), "lbctl")
    decl = as3.declaration(want.pools, want.monitors, "Shop", "lbctl")
    back = as3.parse_tenant(json.loads(json.dumps(decl))["Shop"], "Shop", "lbctl")
    assert (dict(back.pools), dict(back.monitors)) == (want.pools, want.monitors)
    assert as3.parse_tenant(None, "Shop", "lbctl").pools == {}


def test_a_tenant_lbctl_did_not_declare_is_not_taken_over():
    with pytest.raises(ConfigError, match="AS3 tenant Shop exists and was not declared by lbctl"):
        as3.parse_tenant({"class": "Tenant", "app": {"class": "Application"}}, "Shop", "lbctl")


def test_a_weight_above_the_as3_ratio_maximum_names_pool_and_member():
    desired = model.Desired(pools=(model.Pool("web", members=(
        model.Member("web-1", "10.0.0.1", 80, weight=200), model.Member("web-2", "10.0.0.2", 80))),))
    with pytest.raises(ConfigError, match=r"^pools.web: member web-1: weight 200 is above AS3's ratio maximum of 100"):
        as3.document(desired, "Shop", "lbctl")


def test_schema_errors_name_the_path():
    desired = model.Desired(pools=(model.Pool("web-", members=(model.Member("a", "10.0.0.1", 80),)),))
    with pytest.raises(ValidationError, match=r"^the AS3 declaration does not match F5's schema: /Shop/lbctl: "
                                              r"'web-' does not match"):
        as3.check(as3.document(desired, "Shop", "lbctl"))


@pytest.mark.parametrize("breakage", [
    lambda d: d["Shop"]["lbctl"]["web"]["members"][0].pop("servicePort"),
    lambda d: d["Shop"]["lbctl"]["web"]["members"][0].update(ratio=101),
    lambda d: d["Shop"]["lbctl"]["web"].update(loadBalancingMode="fastest"),
    lambda d: d["Shop"]["lbctl"]["web"].update(bogus=1),
    lambda d: d["Shop"]["lbctl"].update({"9bad": {"class": "Pool"}}),
    lambda d: d["Shop"]["lbctl"].update({"x": {"class": "NoSuchClass"}}),
    lambda d: d["Shop"]["lbctl"]["web_http"].update(interval="often"),
    lambda d: d["Shop"].update(remark='quote"d'),
    lambda d: d.update(schemaVersion="2.0.0"),
    lambda d: None,
])
def test_the_fast_check_agrees_with_the_whole_schema(breakage):
    decl = copy.deepcopy(as3.document(example(), "Shop", "lbctl"))
    breakage(decl)
    whole = list(as3.validator().iter_errors(decl))
    assert bool(as3.errors(decl)) == bool(whole)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_render_as3_prints_the_declaration_and_validate_checks_it():
    result = run("render", "-i", EXAMPLE, "-t", "bigip", "--format", "as3")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == as3.document(example(), "lbctl", "lbctl")
    checked = run("validate", "-i", EXAMPLE, "-t", "bigip", "--format", "as3")
    assert (checked.exit_code, checked.output) == (0, f"{EXAMPLE}: the bigip configuration is valid\n")


def test_render_as3_takes_tenant_and_owner_from_the_bigip_target(tmp_path):
    (tmp_path / "lbctl.yml").write_text(
        f"source: {{inventory: {EXAMPLE}}}\nstate_dir: {tmp_path}/state\ntargets:\n"
        "  f5: {kind: bigip, host: 192.0.2.1, username: admin, password_env: NOPE, as3_tenant: Shop, owner: blue}\n")
    for name in ("bigip", "f5"):  # the kind: the config's one target of that kind
        result = run("render", "-c", tmp_path / "lbctl.yml", "-t", name, "--format", "as3")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == as3.document(example(), "Shop", "blue")
    checked = run("validate", "-c", tmp_path / "lbctl.yml", "--format", "as3")  # no device is asked
    assert (checked.exit_code, checked.output) == (0, f"{EXAMPLE}: the f5 configuration is valid\n")
    moved = run("render", "-c", tmp_path / "lbctl.yml", "-t", "as3")
    assert moved.exit_code == 1 and "-t as3 is now --format as3 of a bigip target" in moved.output


def test_plan_and_apply_need_a_bigip_target_in_the_config():
    result = run("plan", "-i", EXAMPLE, "-t", "bigip", "-o", "x.json")
    assert result.exit_code == 1
    assert "without a config, only render and validate take a bigip (--format as3)" in result.output


def test_routes_are_an_endpoint_policy_in_the_one_order_valid_against_the_schema():
    from lbctl.discovery import consul_model, merge

    parts = inventory.parts({"listeners": {"web": {
        "port": 8080, "default_pool": "app", "accept_routes": ["*.apps.example.com"],
        "routes": [{"path": "/static/", "pool": "app"}]}}, "pools": {"app": {}}})
    entry = {"Node": {"Node": "n", "Address": "10.0.0.2"}, "Checks": [], "Service": {
        "ID": "s1", "Address": "10.0.0.2", "Port": 80, "CreateIndex": 3,
        "Meta": {"lb-route": "shop.apps.example.com/cart/,*.x.apps.example.com"}}}
    desired, _ = merge.from_entries(parts, {"shop": [entry]}, consul_model.Policy())
    decl = as3.document(desired, "Shop", "lbctl")
    policy = decl["Shop"]["lbctl"]["routes_web"]
    assert policy["strategy"] == "first-match"
    rules = [(r["name"], [(c["type"], c.get("host", c.get("path"))["operand"], c.get("host", c.get("path"))["values"])
                          for c in r.get("conditions", [])], r["actions"][0]["select"]["pool"]["use"]) for r in policy["rules"]]
    assert rules == [
        ("route0", [("httpHost", "equals", ["shop.apps.example.com"]), ("httpUri", "starts-with", ["/cart/"])], "shop"),
        ("route1", [("httpHost", "ends-with", [".x.apps.example.com"])], "shop"),
        ("route2", [("httpUri", "starts-with", ["/static/"])], "app"),
        ("default", [], "app")]
    assert as3.errors(decl) == []
    policy["strategy"] = "most-match"
    assert as3.errors(decl) and "most-match" in as3.errors(decl)[0]
