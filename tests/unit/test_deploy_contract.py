"""deploy and the controller against targets that implement the Target contract and
nothing else (tests/fake_targets.py): every step goes through declared methods,
and a target without an optional capability goes the normal way."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lbctl import deploy, guard, model
from lbctl.watch.controller import startup_lines
from lbctl.watch.writes import runtime_targets
from lbctl.errors import ConfigError, ReloadError, RollbackError, ValidationError, VerifyError
from lbctl.targets.base import Restorable, RuntimeChanges
from tests.fake_targets import CONTRACT, Memory, MemoryRestorable, MemoryRuntime


def desired(*members: str) -> model.Desired:
    return model.Desired(pools=(model.Pool("web", tuple(model.Member(m, "10.0.0.1", 80) for m in members)),))


def test_a_target_with_only_the_contract_goes_through_a_full_deploy_and_rollback_cycle(tmp_path):
    target = Memory(tmp_path)
    assert not isinstance(target, (Restorable, RuntimeChanges))
    first = deploy.deploy(target, desired("a", "b"))
    assert (first.result, first.message) == ("applied", "edge: applied memory:edge and memory reloaded")
    assert target.calls == ["check", "apply", "reload", "verify"]
    assert deploy.deploy(target, desired("a", "b")).message == "edge: memory:edge is up to date"

    target.fail, target.calls = {"verify"}, []  # the new config does not serve: put the previous one back
    with pytest.raises(VerifyError) as failed:
        deploy.deploy(target, desired("a", "b", "c"))
    assert str(failed.value) == ("edge: verify failed; restored the previous configuration, which is live again")
    assert target.calls == ["check", "apply", "reload", "verify", "rollback", "reload", "verify"]
    assert target.file == target.runs == "pool web a b\n"
    assert target.state.last()["result"] == "rolled-back"

    target.fail, target.calls = {"verify", "rollback"}, []
    with pytest.raises(RollbackError, match="restoring the previous configuration also failed"):
        deploy.deploy(target, desired("a", "b", "c"))
    assert target.read <= CONTRACT, f"deploy read undeclared attributes: {sorted(target.read - CONTRACT)}"


def test_a_target_that_does_not_run_is_written_and_says_so_without_a_start_hint(tmp_path):
    target = Memory(tmp_path, up=False)
    outcome = deploy.deploy(target, desired("a"))
    assert (outcome.result, outcome.message) == (
        "written", "edge: wrote memory:edge; memory is not running, so it takes effect when it starts")
    assert target.calls == ["check", "apply"] and target.read <= CONTRACT


def test_a_rejected_candidate_changes_nothing(tmp_path):
    target = Memory(tmp_path)
    deploy.deploy(target, desired("a"))
    target.fail, target.calls = {"check"}, []
    with pytest.raises(ValidationError, match="^edge: check failed$"):
        deploy.deploy(target, desired("a", "b"))
    assert target.calls == ["check"] and target.file == target.runs == "pool web a\n"


def test_the_guard_reads_what_the_target_serves(tmp_path):
    target = Memory(tmp_path)
    deploy.deploy(target, desired("a", "b", "c", "d"))
    with pytest.raises(guard.Refused, match="refusing the change"):
        deploy.deploy(target, desired("a"))
    assert target.file == "pool web a b c d\n" and target.read <= CONTRACT


def test_a_text_or_a_reload_in_place_needs_a_restorable_target(tmp_path):
    target = Memory(tmp_path)
    with pytest.raises(ConfigError, match="^edge: a memory target keeps no backups; apply the previous inventory"):
        deploy.deploy(target, candidate="pool web a\n", action="rollback")
    with pytest.raises(ConfigError, match="^edge: a memory target has no configuration file to reload$"):
        deploy.reload_in_place(target)
    assert target.calls == []


def test_a_restorable_target_takes_a_text_through_the_same_path(tmp_path):
    target = MemoryRestorable(tmp_path)
    deploy.deploy(target, desired("a", "b"))
    deploy.deploy(target, desired("a", "b", "c"))
    target.calls = []
    outcome = deploy.deploy(target, candidate="pool web a b\n", action="rollback")
    assert outcome.result == "applied" and target.runs == "pool web a b\n"
    assert target.calls == ["check", "apply", "reload", "verify"]
    assert deploy.reload_in_place(target).message == (
        "edge: reloaded memory:edge, which the running memory had loaded already")
    down = MemoryRestorable(tmp_path, "down", up=False)
    deploy.deploy(down, desired("a"))
    with pytest.raises(ReloadError, match="^down: memory is not running, so there is nothing to reload; start it$"):
        deploy.reload_in_place(down)
    assert target.read <= CONTRACT | {n for n in dir(Restorable) if not n.startswith("_")}


def test_runtime_changes_are_made_live_verified_and_undone_on_failure(tmp_path):
    target = MemoryRuntime(tmp_path)
    deploy.deploy(target, desired("a"))
    target.calls = []
    outcome = deploy.deploy(target, desired("a", "b"))
    assert outcome.message == "edge: applied memory:edge through the runtime API, without a reload"
    assert target.calls == ["check", "runtime", "verify", "apply"] and target.unwritten is None

    target.fail, target.calls = {"verify"}, []
    with pytest.raises(VerifyError, match="undid the runtime change .read back.: the previous configuration is live"):
        deploy.deploy(target, desired("a", "b", "c"))
    assert target.calls == ["check", "runtime", "verify", "undo"] and target.runs == "pool web a b\n"


def test_a_runtime_change_the_target_cannot_make_goes_the_normal_way(tmp_path):
    target = MemoryRuntime(tmp_path)
    deploy.deploy(target, desired("a"))
    target.fail, target.calls = {"runtime"}, []
    assert deploy.deploy(target, desired("a", "b")).message == "edge: applied memory:edge and memory reloaded"
    assert target.calls == ["check", "runtime", "apply", "reload", "verify"]


def unwritten(targets: list) -> list:
    """The targets whose runtime changes wait for their file write."""
    return [t for t in runtime_targets(targets) if t.unwritten is not None]


def test_a_deferred_runtime_change_is_written_by_the_controller_and_only_for_runtime_targets(tmp_path):
    plain, fast = Memory(tmp_path, "plain"), MemoryRuntime(tmp_path, "fast")
    for target in (plain, fast):
        deploy.deploy(target, desired("a"))
        deploy.deploy(target, desired("a", "b"), defer=True)
    assert unwritten([plain, fast]) == [fast] and fast.file == "pool web a\n" and fast.runs == "pool web a b\n"
    with fast.state.lock():
        deploy.flush(fast)
        deploy.flush(plain)  # nothing to write: no capability, no attribute
    assert unwritten([plain, fast]) == [] and fast.file == "pool web a b\n"
    assert plain.read <= CONTRACT


def test_runtime_drift_is_repaired_only_where_the_target_declares_it(tmp_path):
    target = MemoryRuntime(tmp_path)
    deploy.deploy(target, desired("a"))
    target._runs = "pool web x\n"  # someone changed the running servers
    outcome = deploy.deploy(target, desired("a"))
    assert outcome.message == "edge: put back the running pools" and target.runs == "pool web a\n"


def test_the_watch_start_line_names_what_the_contract_says(tmp_path):
    target = Memory(tmp_path)
    target.shared = True
    setup = SimpleNamespace(consul=None, inventory=None, targets=[target], guard=guard.Policy())
    assert startup_lines(setup, force=False)[0] == "target edge: memory memory:edge, shared (leader only)"
    assert target.read <= CONTRACT
