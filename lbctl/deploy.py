"""One safe change to one target: plan → check → (runtime change) → back up and
swap → reload → verify, and on any failure after a change went live, put the
previous state back: restore → reload → verify, or undo the runtime change.

The live configuration is only ever the old or the new one: a rejected
candidate never reaches it, and a crash at any point leaves one or the other.
A change made through HAProxy's Runtime API may leave the file behind for at
most the target's ``write_delay`` (``lbctl watch`` coalesces the writes); it is
written before any reload and before lbctl stops (``flush``).
"""

from __future__ import annotations

import difflib
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from lbctl import guard, model, textdiff
from lbctl.digests import digest
from lbctl.errors import ApplyError, ConfigError, LbctlError, ReloadError, RollbackError
from lbctl.targets.base import Change, Checkpoint, Restorable, RuntimeChanges, Target, Writing

Record = Callable[[str, str, "str | None"], None]


@dataclass(frozen=True)
class Outcome:
    """What one deploy did.  ``result``: unchanged | applied | written (process not running)."""

    target: str
    result: str
    message: str
    change: Change | None = None


def deploy(target: Target, desired: model.Desired | None = None, candidate: str | None = None,
           action: str = "apply", fence: Callable[[], None] | None = None,
           policy: guard.Policy = guard.Policy(), defer: bool = False) -> Outcome:
    """Make ``target`` serve ``desired`` (or the ``candidate`` text, for a rollback).

    ``fence`` is called right before anything is changed; it raises when this
    process may no longer write (a leader that lost its lock).  ``policy`` is the
    removal guard's (``guarded``).  ``defer``: a change made through the Runtime
    API leaves its file write to ``flush`` (``lbctl watch``), which must then run
    within the target's ``write_delay``.  Every outcome but "unchanged" is
    recorded (``TargetState.record``: last apply, audit log, metrics).

    :raises LbctlError: the change was refused or failed; the message says whether
        the previous configuration is live again.  ``RollbackError`` if it is not.
        ``ConfigError`` for a ``candidate`` text to a target that is not ``Restorable``.
    """
    fence = fence or (lambda: None)
    with target.state.lock():
        change = target.plan(desired) if candidate is None else restorable(target).plan_text(candidate)
        guarded(target, change, policy, action)
        if change.noop:
            written(target)  # a file write in progress: the file and the process agree again first
            if not defer:
                flush(target, fence)
            why = target.stale()  # the process runs an older file: an interrupted apply, drift
            if why:
                return finish_interrupted(target, change, why)
            # servers changed on the running process
            how = target.repair_runtime() if isinstance(target, RuntimeChanges) and not defer else None
            if how:
                target.verify(change)
                message = f"{target.name}: {how}"
                target.state.record("applied", message, None, digest(change.candidate))
                return Outcome(target.name, "applied", message, change)
            return Outcome(target.name, "unchanged", f"{target.name}: {target.location} is up to date", change)
        started = time.monotonic()

        def record(result: str, message: str, now: str | None) -> None:
            target.state.record(result, message, digest(change.live), now, changed(change), action,
                                time.monotonic() - started)

        try:
            target.check(change)  # first: nothing has changed anywhere yet
        except LbctlError as exc:
            record("failed", str(exc), digest(change.live))
            raise
        fault("checked")
        running = target.running()  # raises if it runs but cannot be reached: nothing changed yet
        fence()
        if running and isinstance(target, RuntimeChanges) and target.runtime(change):  # HAProxy: members
            fault("runtime")
            return runtime_applied(target, change, record, fence, defer)
        flush(target, fence)  # a reload loads the file: it must hold every runtime change first
        return swap_and_reload(target, change, record, fence, running)


def runtime_applied(target: RuntimeChanges, change: Change, record: Record, fence: Callable[[], None],
                    defer: bool) -> Outcome:
    """``change`` is live through the Runtime API (read back): confirm it serves, then
    write its file now, or (``defer``) leave both to ``confirm`` and ``flush``, keeping
    the apply lock until then, so that the next change need not wait for them."""
    if not defer:
        try:
            target.verify(change)
        except LbctlError as exc:
            undo(target, change, exc, record)
    base = target.unwritten.live if target.unwritten is not None else change.live
    target.unwritten = Change(target.name, base, change.candidate)
    target.unwritten_since = target.unwritten_since or time.monotonic()
    if defer:
        target.unverified = True
        target.state.hold = True  # one-shot commands wait for the file (TargetState.lock)
    else:
        flush(target, fence, record)
    message = f"{target.name}: applied {target.location} through the runtime API, without a reload"
    record("applied", message, digest(change.candidate))
    return Outcome(target.name, "applied", message, change)


def flush(target: Target, fence: Callable[[], None] | None = None, record: Record | None = None) -> None:
    """Write the file that runtime changes made without it (``deploy(defer=True)``)
    left behind, and release the apply lock kept for it.  Call with the lock held
    (``target.state.lock()`` is re-entrant for this process).  Nothing for a target
    without ``RuntimeChanges``.

    :raises LbctlError: it could not be written: the runtime changes were undone
        and the file in place is what runs again (the message says so).
        ``RollbackError`` if the undo failed.
    """
    written(target, record)  # one writer of the file at a time: a write in progress ends first
    pending = target.unwritten if isinstance(target, RuntimeChanges) else None
    if pending is None:
        return
    confirm(target, record)
    target.unwritten = target.unwritten_since = None
    target.state.hold = False
    try:
        (fence or (lambda: None))()
        target.apply(pending)
    except LbctlError as exc:
        undo(target, pending, exc, record or recorder(target, pending, "write"))
    target.note_loaded()  # what runs is this file now, without a reload (drift)
    fault("swapped")


def flush_begin(target: Target, fence: Callable[[], None], done: Callable[[], None]) -> None:
    """``flush`` for ``lbctl watch``: verify the runtime changes made so far and write
    their file on a thread of its own, so that a runtime change made meanwhile need not
    wait for the process check, the probes or the disk (tens of milliseconds at 10,000
    services).  ``done`` is called when the write ends; ``written`` then finishes it
    (and undoes the changes if they did not verify).  Nothing if no change waits or a
    write is in progress.  Call with the lock held.
    """
    pending = target.unwritten if isinstance(target, RuntimeChanges) else None
    if pending is None or target.writing is not None:
        return
    try:
        fence()
    except LbctlError as exc:  # not this process's to write (a leader that lost its lock), as in ``flush``
        abandon(target, pending, exc, recorder(target, pending, "write"))
    target.unwritten_since = None  # a change made meanwhile is timed from itself
    unverified, target.unverified = target.unverified, False  # one made meanwhile is verified next time

    def write() -> None:
        try:
            if unverified:
                try:
                    target.verify(pending)
                except LbctlError:
                    writing.action = "apply"  # what failed: the changes themselves, not the write
                    raise
            target.apply(pending)
        except Exception as exc:  # noqa: BLE001 - the controller's thread undoes and reports it
            writing.error = exc if isinstance(exc, LbctlError) else ApplyError(f"{target.name}: {exc}")
        finally:
            done()
    writing = Writing(pending, threading.Thread(target=write, name=f"write {target.name}", daemon=True))
    target.writing = writing
    writing.thread.start()


def written(target: Target, record: Record | None = None) -> None:
    """Wait for the write ``flush_begin`` started, and finish it: runtime changes made
    meanwhile stay to be written, now against the file just written; a failed
    verification or write undoes every runtime change not in the file.  Call with the
    lock held.

    :raises LbctlError: they did not verify, or the write failed; the message says the
        file in place runs again.
        ``RollbackError`` if the undo failed.
    """
    writing = target.writing if isinstance(target, RuntimeChanges) else None
    if writing is None:
        return
    writing.thread.join()
    target.writing = None
    newer = target.unwritten if target.unwritten is not writing.pending else None
    if writing.error is not None:
        change = newer if newer is not None else writing.pending  # from the file in place to what runs now
        abandon(target, change, writing.error, record or recorder(target, change, writing.action))
    if newer is not None:
        target.unwritten = Change(target.name, writing.pending.candidate, newer.candidate)
    else:
        target.unwritten = target.unwritten_since = None
        target.state.hold = False
    target.note_loaded()  # what runs is this file now, without a reload (drift)
    fault("swapped")


def confirm(target: RuntimeChanges, record: Record | None = None) -> None:
    """``verify`` the runtime changes ``deploy(defer=True)`` made live (after their
    read-back), before their file is written (``flush`` calls this first).  Call
    with the lock held.

    :raises LbctlError: it did not verify: every change not yet in the file was
        undone and the file in place is what runs again (the message says so).
        ``RollbackError`` if the undo failed.
    """
    pending = target.unwritten
    if not target.unverified or pending is None:
        return
    target.unverified = False
    try:
        target.verify(pending)
    except LbctlError as exc:
        abandon(target, pending, exc, record or recorder(target, pending, "apply"))


def abandon(target: RuntimeChanges, change: Change, failure: LbctlError, record: Record) -> None:
    """Forget the runtime changes not yet in the file (``change``: from the file to what
    runs), let go of the lock kept for them, and undo them (``undo``, which raises)."""
    target.unwritten = target.unwritten_since = None
    target.unverified = target.state.hold = False
    undo(target, change, failure, record)


def recorder(target: Target, pending: Change, action: str) -> Record:
    """How to record the outcome of work on ``pending``, changes left unwritten."""
    started = time.monotonic()

    def record(result: str, message: str, now: str | None) -> None:
        target.state.record(result, message, digest(pending.live), now, changed(pending), action,
                            time.monotonic() - started)
    return record


def swap_and_reload(target: Target, change: Change, record: Record, fence: Callable[[], None],
                    running: bool) -> Outcome:
    """The checked candidate in place, then a reload (if the process runs) and verify;
    on failure after the swap, ``restore``."""
    try:
        fence()
        target.state.mark_pending()
        checkpoint = target.apply(change)
    except LbctlError as exc:  # apply undoes its own partial work: nothing changed
        target.state.clear_pending()
        record("failed", str(exc), digest(change.live))
        raise
    fault("swapped")
    if not running:
        target.state.clear_pending()
        message = (f"{target.name}: wrote {target.location}; {target.kind} is not running, "
                   f"so it takes effect when it starts{target.start_hint()}")
        record("written", message, digest(change.candidate))
        return Outcome(target.name, "written", message, change)
    try:
        target.reload(change)
        fault("reloaded")
        target.verify(change)
    except LbctlError as exc:
        restore(target, checkpoint, change, exc, record)
    target.state.clear_pending()
    message = f"{target.name}: applied {target.location} and {target.kind} {target.reloaded}"
    record("applied", message, digest(change.candidate))
    return Outcome(target.name, "applied", message, change)


def undo(target: RuntimeChanges, change: Change, failure: LbctlError, record: Record) -> None:
    """Put back the running state of ``change.live`` after ``failure``, which came
    after ``change`` went live through the Runtime API, and raise.

    :raises LbctlError: ``failure``'s kind, saying the previous state is live again.
    :raises RollbackError: it could not be put back.
    """
    try:
        target.undo_runtime(change)
    except LbctlError as second:
        message = f"{failure}; undoing the runtime change also failed: {second}"
        record("rollback-failed", message, digest(change.candidate))
        raise RollbackError(message) from None
    message = f"{failure}; undid the runtime change (read back): the previous configuration is live again"
    record("rolled-back", message, digest(change.live))
    raise type(failure)(message) from None


def guarded(target: Target, change: Change, policy: guard.Policy, action: str = "apply") -> None:
    """The removal guard (``guard.py``) on ``change``, unless an operator approved
    exactly this change (``lbctl approve``).  A refusal is remembered for ``lbctl
    status`` and ``lbctl approve`` and told to the metrics and the audit log.

    :raises guard.Refused: nothing was touched.
    """
    if not change.noop:
        try:
            guard.check(target.name, *target.served_change(change), policy)
        except guard.Refused as exc:
            if not target.state.take_approval(digest(change.candidate)):
                target.state.refuse(str(exc), digest(change.live), digest(change.candidate), action)
                raise
    target.state.clear_refused()


def finish_interrupted(target: Target, change: Change, why: str) -> Outcome:
    """The file is ahead of the process (``why``: a run was killed after its swap and
    before its reload, or the file was never loaded).  Reload it now.

    :raises ReloadError, VerifyError: the process still runs the previous config.
    """
    target.resume(change)
    target.verify(change)
    target.state.clear_pending()
    message = f"{target.name}: reloaded {target.location}, which {why}"
    target.state.record("applied", message, None, digest(change.candidate))
    return Outcome(target.name, "applied", message, change)


def reload_in_place(target: Target) -> Outcome:
    """``lbctl reload``: check the configuration in place and make the running
    process load it (confirmed and verified like an apply).

    :raises ConfigError: the target is not ``Restorable`` (it has no configuration
        text), or there is no file.  :raises ValidationError: it does not pass the check.
    :raises ReloadError, VerifyError: the process still runs what it ran.
    """
    if not isinstance(target, Restorable):
        raise ConfigError(f"{target.name}: a {target.kind} target has no configuration file to reload")
    with target.state.lock():
        live = target.plan_text("").live
        if live is None:
            raise ConfigError(f"{target.name}: {target.location} does not exist; lbctl apply writes it")
        change = Change(target.name, live, live)
        target.check(change)
        if not target.running():
            raise ReloadError(f"{target.name}: {target.kind} is not running, so there is nothing to reload; "
                              f"start it{target.start_hint()}")
        return finish_interrupted(target, change, target.stale() or f"the running {target.kind} had loaded already")


def restore(target: Target, checkpoint: Checkpoint, change: Change, failure: LbctlError, record: Record) -> None:
    """Put the previous configuration back after ``failure`` and raise.

    :raises LbctlError: ``failure``'s kind, saying the previous config is live again.
    :raises RollbackError: the previous config could not be restored.
    """
    try:
        back = target.rollback(checkpoint)
        if change.live is not None:
            target.reload(back)
            target.verify(back)
    except LbctlError as second:
        message = f"{failure}; restoring the previous configuration also failed: {second}"
        record("rollback-failed", message, digest(change.candidate))
        raise RollbackError(message) from None
    target.state.clear_pending()
    message = f"{failure}; restored the previous configuration, which is live again"
    record("rolled-back", message, digest(change.live))
    raise type(failure)(message) from None


def restorable(target: Target) -> Restorable:
    """``target`` as one that takes a configuration text (a backup).

    :raises ConfigError: it does not.
    """
    if not isinstance(target, Restorable):
        raise ConfigError(f"{target.name}: a {target.kind} target keeps no backups; apply the previous inventory instead")
    return target


def changed(change: Change, limit: int = 50) -> list[str]:
    """What a change does, for the audit log: the target's summary, or the changed lines."""
    if change.summary:
        return list(change.summary[:limit])
    _, before, after = textdiff.stretch(change.live or "", change.candidate)  # the changed stretch only
    lines = [line.rstrip("\n") for line in difflib.unified_diff(before, after, lineterm="", n=0)
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return lines[:limit] + ([f"... {len(lines) - limit} more lines"] if len(lines) > limit else [])


def fault(point: str) -> None:
    """Crash here, as by ``kill -9``, when LBCTL_FAULT names this point (crash-safety tests)."""
    if os.environ.get("LBCTL_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
