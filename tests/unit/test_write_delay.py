"""lbctl watch verifies runtime API changes and writes their files late, once, and
always, the write on a thread of its own: the controller's scheduling
(``watch/writes.py``), ``deploy.flush_begin``, ``deploy.written`` and ``deploy.flush``,
with a target that records what it is asked to do (the real thing is tested end to
end in test_watch.py and test_runtime.py)."""

from __future__ import annotations

import threading
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
        self.hold_write: threading.Event | None = None  # set: the write goes on

    def apply(self, change):
        if self.hold_write is not None:
            self.hold_write.wait(5)  # the disk is slow: a change comes meanwhile
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


def settle(ctl: Controller, *targets: Recorder) -> None:
    """Let the writes started end, and the loop finish them (as it does when woken)."""
    for target in targets:
        if target.writing is not None:
            target.writing.thread.join(5)
    ctl.write()


def test_only_the_writes_that_are_due_are_made_and_every_one_before_a_stop(tmp_path):
    now = time.monotonic()
    late, early, none = Recorder(tmp_path, "late", now - 2), Recorder(tmp_path, "early", now), Recorder(tmp_path, "x", None)
    ctl = controller([late, early, none])
    assert ctl.write_due() == pytest.approx(now - 1)
    ctl.write()
    settle(ctl, late)
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
    settle(ctl, target)
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
    settle(ctl, target)
    assert target.done == ["verify", "write"] and not target.unverified and target.unwritten is None


def test_a_failed_verification_undoes_every_unwritten_change_and_retries(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5, unverified=True, failing=True)  # its write due
    with target.state.lock():
        target.state.hold = True  # what deploy does after a deferred runtime change
    ctl = controller([target])
    ctl.write()  # verified on the write's thread: a change made meanwhile need not wait for the probes
    assert target.writing is not None and target.state.hold
    settle(ctl, target)
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
    ctl = controller([target])
    ctl.write()
    settle(ctl, target)
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


def test_a_change_made_while_the_file_is_written_need_not_wait_and_is_written_next(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5, unverified=True)
    target.hold_write = threading.Event()
    with target.state.lock():
        target.state.hold = True
    ctl = controller([target])
    ctl.write()  # verified here; the file is being written on a thread
    assert target.done == ["verify"] and target.writing is not None and ctl.write_due() is None
    # a runtime change meanwhile (deploy's runtime_applied): against the file in place, timed from itself
    deploy.runtime_applied(target, Change("edge", "new\n", "newer\n"), lambda *a: None, lambda: None, True)
    assert target.unwritten == Change("edge", "old\n", "newer\n") and target.unverified
    target.hold_write.set()
    settle(ctl, target)
    assert target.written == ["new\n"] and target.writing is None
    assert target.unwritten == Change("edge", "new\n", "newer\n")  # now against the file written
    assert target.state.hold and target.unverified and ctl.write_due() == pytest.approx(target.unwritten_since + 1)
    ctl.write(every=True)  # a stop: verified and written, waited for
    assert target.done == ["verify", "write", "verify", "write"] and target.written == ["new\n", "newer\n"]
    assert target.unwritten is None and not target.state.hold


def test_a_failed_write_undoes_the_changes_made_meanwhile_too(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5, fail=True)
    target.hold_write = threading.Event()
    ctl = controller([target])
    ctl.write()
    deploy.runtime_applied(target, Change("edge", "new\n", "newer\n"), lambda *a: None, lambda: None, True)
    target.hold_write.set()
    settle(ctl, target)
    assert target.undone == ["old\n"]  # back to the file in place, past both changes
    assert (target.unwritten, target.unverified, target.writing) == (None, False, None)
    assert ctl.dirty == {"*"} and ctl.retry_at is not None


def test_a_stop_waits_for_the_write_in_progress(tmp_path):
    target = Recorder(tmp_path, "edge", time.monotonic() - 5)
    target.hold_write = threading.Event()
    ctl = controller([target])
    ctl.write()
    threading.Timer(0.2, target.hold_write.set).start()
    ctl.write(every=True)
    assert target.written == ["new\n"] and target.writing is None and target.unwritten is None


def test_a_write_this_process_may_no_longer_make_undoes_the_runtime_change(tmp_path):
    from lbctl.watch.election import NotLeader

    target = Recorder(tmp_path, "edge", time.monotonic() - 5)
    ctl = controller([target])
    ctl.fence_of = lambda t: (lambda: (_ for _ in ()).throw(NotLeader("lost the leader lock; not writing")))
    ctl.write()
    assert (target.written, target.undone, target.unwritten, target.writing) == ([], ["old\n"], None, None)
    assert ctl.write_due() is None and ctl.dirty == {"*"}


def test_a_change_reported_holds_the_feeds_until_the_loop_is_idle_again(tmp_path):
    """``quiet`` (what the Consul feeds' answers wait for, briefly: OneRead) clears when a
    change is reported and is set again once the loop has nothing due."""
    ctl = controller([])
    ctl.setup.watch = SimpleNamespace(retry_max_ms=1000, min_wait_ms=0, max_wait_ms=1000)
    ctl.start = lambda setup: None  # noqa: E731 - no source to start
    ctl.load = lambda: ctl.setup
    ctl.quiet.set()
    ctl.changed({"svc"})
    assert not ctl.quiet.is_set()
    ctl.dirty.clear()  # as a round does
    loop = threading.Thread(target=ctl.run, daemon=True)
    loop.start()
    try:
        assert ctl.quiet.wait(5)
    finally:
        ctl.request_stop()
        loop.join(5)
