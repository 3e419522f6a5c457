"""``lbctl check`` (lbctl/targets/health.py) on targets held in memory: fit only when
the process runs, answers, and serves the configuration in place."""

from __future__ import annotations

from lbctl import model
from lbctl.errors import CommandError
from lbctl.targets import health
from tests.fake_targets import Memory

DESIRED = model.Desired(pools=(model.Pool("web", members=(model.Member("a", "10.0.0.1", 80),)),))


def test_a_running_target_in_step_is_fit(tmp_path):
    assert health.problems(Memory(tmp_path)) == []


def test_a_stopped_target_is_unfit(tmp_path):
    assert health.problems(Memory(tmp_path, up=False)) == ["edge: not running"]


def test_an_unfinished_apply_is_unfit(tmp_path):
    target = Memory(tmp_path)
    target.state.mark_pending()
    assert health.problems(target) == [
        "edge: runs an older configuration than memory:edge (an interrupted apply had written)"]


def test_a_process_that_does_not_answer_is_unfit_in_one_line(tmp_path):
    target = Memory(tmp_path)

    def unreachable() -> bool:
        raise CommandError("edge: haproxy is running but its master CLI does not answer")

    target.running = unreachable
    assert health.problems(target) == ["edge: haproxy is running but its master CLI does not answer"]
