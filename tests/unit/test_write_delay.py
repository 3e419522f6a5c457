"""lbctl watch verifies runtime API changes once no other change waits, and writes
their files late, once, and always: the controller's scheduling, ``deploy.confirm``
and ``deploy.flush``, with a target that records what it is asked to do (the real
thing is tested end to end in test_watch.py and test_runtime.py)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from lbctl import deploy
from lbctl.errors import ApplyError, LockedError, VerifyError
from lbctl.watch.controller import Controller
from lbctl.targets import files
from lbctl.targets.base import Change
from lbctl.targets.state import TargetState
from tests.fake_targets import MemoryRuntime


class Recorder(MemoryRuntime):
    """A target whose file writes and runtime undos are recorded (or fail on demand)."""

    def __init__(self, directory, name: str, since: float | None, fail: bool = False, unverified: bool = False,
                 failing: bool = False) -> None:
        super().__init__(directory, name)
        self.fail_write, self.fail_verify = fail, failing
        self.unverified = unverified  # a deferred runtime change awaits ``verify``
        self.write_delay = 1.0
        self.unwritten = None if since is None else Change(name, "old\n", "new\n")
        self.unwritten_since = since
        self.written, self.undone, self.noted = [], [], 0
        self.done: list[str] = []  # verify and write, in order

    def apply(self, change):
        if self.fail_write:
            raise ApplyError(f"{self.name}: cannot write")
        self.written.append(change.candidate)
        self.done.append("write")

    def verify(self, change):
        self.done.append("verify")
        if self.fail_verify:
            raise VerifyError(f"probe http://127.0.0.1:1/ of {self.name} failed: no answer")

    def note_loaded(self):  # the process serves the written file (drift's loaded.json)
        self.noted += 1

    def undo_runtime(self, change):
        self.undone.append(change.live)


def controller(targets) -> Controller:
    ctl = Controller(lambda: None)
    ctl.setup = SimpleNamespace(targets=targets, watch=SimpleNamespace(retry_max_ms=1000))
    return ctl


def test_only_the_writes_that_are_due_are_made_and_every_one_before_a_stop(tmp_path):
    now = time.monotonic()
    late, early, none = Recorder(tmp_path, "late", now - 2), Recorder(tmp_path, "early", now), Recorder(tmp_path, "x", None)
    ctl = controller([late, early, none])
    assert ctl.write_due() == pytest.approx(now - 1)
    ctl.write()
    assert (late.written, early.written, late.unwritten, late.noted) == (["new\n"], [], None, 1)
    assert ctl.write_due() == pytest.approx(now + 1)
    ctl.write(every=True)
    assert early.written == ["new\n"] and ctl.write_due() is None and none.written == []


def test_the_lock_is_kept_while_a_write_is_due_and_released_by_it(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic())
    with target.state.lock():
        target.state.hold = True  # what deploy does after a deferred runtime change
    with pytest.raises(LockedError):  # another lbctl waits ...
        with files.apply_lock(tmp_path / "edge" / "lock", 0.1):
            pass
    with target.state.lock():  # ... while this process may go on (re-entrant)
        deploy.flush(target)
    with files.apply_lock(tmp_path / "edge" / "lock", 0.1):  # ... until the write
        pass


def test_a_failed_write_undoes_the_runtime_change_and_retries(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5, fail=True)
    ctl = controller([target])
    ctl.write()
    assert target.undone == ["old\n"] and target.unwritten is None
    assert ctl.dirty == {"*"} and ctl.retry_at is not None
    last = target.state.last()
    assert (last["action"], last["result"]) == ("write", "rolled-back")
    assert last["message"] == ("edge: cannot write; undid the runtime change (read back): "
                               "the previous configuration is live again")


def test_a_state_file_that_holds_the_entry_already_is_not_written_again(tmp_path):
    state = TargetState(tmp_path / "edge", "edge", 0.2)
    state.keep("loaded.json", {"file": [1, 2], "identity": [7]})
    path = tmp_path / "edge" / "loaded.json"
    first = path.stat().st_ino
    state.keep("loaded.json", {"file": [1, 2], "identity": [7]})
    assert path.stat().st_ino == first, "the same entry: the file was not replaced"
    state.keep("loaded.json", {"file": [1, 3], "identity": [7]})
    assert path.stat().st_ino != first and '"file": [\n  1,\n  3\n ]' in path.read_text()
    path.write_text("garbage")
    state.keep("loaded.json", {"file": [1, 3], "identity": [7]})
    assert '"identity"' in path.read_text()


def test_a_deferred_runtime_change_is_verified_with_its_file_once_the_write_is_due(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic(), unverified=True)  # its write not due yet
    ctl = controller([target])
    ctl.write()
    assert (target.done, target.unverified) == ([], True)  # nothing between changes: the next need not wait
    target.unwritten_since = time.monotonic() - 5  # its write is due
    ctl.write()
    assert target.done == ["verify", "write"] and not target.unverified and target.unwritten is None


def test_a_failed_verification_undoes_every_unwritten_change_and_retries(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5, unverified=True, failing=True)  # its write due
    with target.state.lock():
        target.state.hold = True  # what deploy does after a deferred runtime change
    ctl = controller([target])
    ctl.write()
    assert (target.undone, target.written, target.unwritten, target.state.hold) == (["old\n"], [], None, False)
    assert ctl.dirty == {"*"} and ctl.retry_at is not None
    last = target.state.last()
    assert (last["action"], last["result"]) == ("apply", "rolled-back")
    assert last["message"] == ("probe http://127.0.0.1:1/ of edge failed: no answer; undid the runtime change "
                               "(read back): the previous configuration is live again")
    with files.apply_lock(tmp_path / "edge" / "lock", 0.1):  # the lock was let go
        pass


def test_a_write_that_is_due_verifies_first_and_writes_nothing_that_failed(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5, unverified=True, failing=True)
    controller([target]).write()
    assert (target.done, target.written, target.undone) == (["verify"], [], ["old\n"])


@pytest.mark.parametrize("defer", [True, False])
def test_only_a_one_shot_runtime_change_is_verified_before_deploy_returns(tmp_path, defer):
    target = Recorder(tmp_path, "edge", None)
    records = []
    outcome = deploy.runtime_applied(target, Change("edge", "old\n", "new\n"),
                                     lambda *a: records.append(a[0]), lambda: None, defer)
    assert outcome.result == "applied" and records == ["applied"]
    assert target.done == ([] if defer else ["verify", "write"])
    assert (target.unverified, target.unwritten is not None) == (defer, defer)


def test_last_apply_is_replaced_atomically_and_without_fsync(tmp_path, monkeypatch):
    import os
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    state = TargetState(tmp_path / "edge", "edge", 0.2)
    state.record("applied", "edge: applied", "a" * 64, "b" * 64)
    assert synced == [] and state.last()["hash_after"] == "b" * 64
    state.keep("loaded.json", {"file": [1]})  # what decides drift stays durable
    assert len(synced) == 2  # the file, then its directory
