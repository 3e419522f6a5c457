"""The apache target's runtime bookkeeping (lbctl/targets/apache/live.py) without a running
Apache: the model it keeps for the file in place, and the check it skips for a
members-only change.  ``binary`` is a script that records its calls and passes."""

from __future__ import annotations

import json

import pytest

from lbctl import inventory
from lbctl.session import Session


def raw(*members, balance="roundrobin") -> dict:
    return {"listeners": {"web": {"address": "127.0.0.1", "port": 18080, "default_pool": "app"}},
            "pools": {"app": {"balance": balance, "members": [
                {"name": n, "address": "127.0.0.1", "port": 9000 + i, **extra}
                for i, (n, extra) in enumerate(members)]}}}


@pytest.fixture
def setup(tmp_path):
    calls = tmp_path / "calls"
    binary = tmp_path / "apache2"
    binary.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 0\n")
    binary.chmod(0o755)
    (tmp_path / "lbctl.yml").write_text(json.dumps({
        "state_dir": "state", "targets": {"edge": {
            "kind": "apache", "config": "httpd.conf", "binary": str(binary), "pid_file": "apache2.pid",
            "error_log": "error.log", "run_dir": "run", "manager": "127.0.0.1:1"}}}))

    def target():
        session = Session(tmp_path / "lbctl.yml", None, None, None)
        return session.target(session.selected[0])

    def checks() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0
    return tmp_path, target, checks


def plan_check_apply(target, *members, **pool):
    change = target.plan(inventory.from_raw(raw(*members, **pool)))
    target.check(change)
    target.apply(change)
    return change


def test_a_members_only_change_skips_apache2_t_after_a_full_check(setup):
    _, target, checks = setup
    t = target()
    plan_check_apply(t, ("a", {}))
    assert checks() == 1
    plan_check_apply(t, ("a", {"weight": 3}), ("b", {"state": "drain"}))  # members only: no apache2 -t
    assert checks() == 1
    plan_check_apply(t, ("a", {}), balance="leastconn")  # a pool setting: apache2 -t again
    assert checks() == 2
    assert target().checked is None  # another process checks once more first
    fresh = target()
    plan_check_apply(fresh, ("a", {"weight": 2}))
    assert checks() == 3


def test_the_model_of_the_file_in_place_outlives_the_process(setup):
    directory, target, _ = setup
    first = plan_check_apply(target(), ("a", {}), ("b", {}))
    kept = json.loads((directory / "state" / "edge" / "model.json").read_text())
    assert kept["model"]["pools"][0]["members"][1]["name"] == "b"
    t = target()
    assert t.model_of(first.candidate) == inventory.from_raw(raw(("a", {}), ("b", {})))
    assert t.model_of(first.candidate + "# edited\n") is None  # not the file it was kept for


def test_a_kept_model_counts_only_while_it_renders_the_file_again(setup):
    directory, target, _ = setup
    first = plan_check_apply(target(), ("a", {}))
    settings = json.loads((directory / "lbctl.yml").read_text())
    settings["targets"]["edge"]["threads_per_child"] = 20  # other options: the same model renders another file
    (directory / "lbctl.yml").write_text(json.dumps(settings))
    assert target().model_of(first.candidate) is None
