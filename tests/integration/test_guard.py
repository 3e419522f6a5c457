"""The removal guard end to end: real HAProxy and nginx, real backends, the real CLI."""

from __future__ import annotations

import json

import pytest

from lbctl import audit
from lbctl_testkit.support import Backend, requires_haproxy, requires_nginx
from lbctl_testkit.support.stack import Stack

pytestmark = pytest.mark.integration
KINDS = [pytest.param("haproxy", marks=requires_haproxy), pytest.param("nginx", marks=requires_nginx)]


@pytest.fixture
def backends():
    with Backend("a") as a, Backend("b") as b, Backend("c") as c, Backend("d") as d:
        yield {"a": a, "b": b, "c": c, "d": d}


@pytest.fixture(params=KINDS)
def stack(request, tmp_path, backends):
    s = Stack(tmp_path, request.param)
    del s.settings["guard"]  # the default limits: max_removal 50%
    s.settings["audit_log"] = "audit.jsonl"
    s.write_config()
    s.inventory([(n, backends[n].port) for n in "abcd"])
    assert s.run("apply").exit_code == 0
    with s.running():
        yield s


def test_an_empty_inventory_is_refused(stack):
    before = stack.live.read_text()
    stack.inventory_path.write_text("")  # : > inventory.yml
    valid = stack.run("validate")
    assert valid.exit_code == 1
    assert valid.output == (f"lbctl: error: {stack.inventory_path}: nothing to serve (no listeners, no pools); "
                            "lbctl apply refuses an empty model without --force\n")
    result = stack.run("apply")
    assert result.exit_code == 1
    assert result.output == ("lbctl: error: edge: refusing the change: it would leave nothing to serve (no listeners, "
                             "no pools: an empty or truncated source?) (pass --force to let it through)\n")
    assert stack.live.read_text() == before
    assert set(stack.spread(12)) == set("abcd")
    allowed = stack.run("apply", "--allow-removal", "web,app")
    assert allowed.exit_code == 1 and "refusing the change" in allowed.output  # only --force
    status = stack.run("status")
    assert status.exit_code == 0
    assert "  refused     " in status.output and "it would leave nothing to serve" in status.output
    entry = audit.read(stack.dir / "audit.jsonl")[-1]
    assert (entry["result"], entry["hash_before"]) == ("refused", entry["hash_after"])


def test_a_mass_removal_needs_allow_removal_or_an_approval(stack, backends):
    before = stack.live.read_text()
    stack.inventory([("a", backends["a"].port)])
    refused = stack.run("apply")
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert "pool app: 3 of 4 serving members would stop serving (" in refused.output
    assert stack.live.read_text() == before
    warned = stack.run("validate")
    assert warned.exit_code == 0
    assert "lbctl: warning: edge: apply would refuse this change: pool app: 3 of 4 serving members" in warned.output
    approved = stack.run("approve")
    assert approved.exit_code == 0 and approved.output.startswith("edge: approved the change refused at ")
    assert stack.run("apply").exit_code == 0
    assert stack.spread(10) == {"a": 10}
    assert json.loads(stack.run("status", "--json").output)[0]["refused"] is None
    assert stack.run("approve").exit_code == 1  # nothing left to approve
    stack.inventory([(n, backends[n].port) for n in "abc"])
    assert stack.run("apply").exit_code == 0
    stack.inventory([("d", backends["d"].port)])
    assert stack.run("apply", "--allow-removal", "app").exit_code == 0
    assert stack.spread(10) == {"d": 10}


def test_a_rollback_is_guarded_too(stack, backends):
    stack.inventory([("a", backends["a"].port)])
    assert stack.run("apply", "--force").exit_code == 0
    stack.inventory([(n, backends[n].port) for n in "abcd"])
    assert stack.run("apply").exit_code == 0  # the newest backup now serves only a
    before = stack.live.read_text()
    refused = stack.run("rollback")
    assert refused.exit_code == 1 and "refusing the change: pool app: 3 of 4 serving members" in refused.output
    assert stack.live.read_text() == before
    assert stack.run("rollback", "--allow-removal", "app").exit_code == 0
    assert stack.spread(10) == {"a": 10}
