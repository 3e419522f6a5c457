"""One safe change to one target: plan → check → back up and swap → reload →
verify, and on any failure after the swap, restore → reload → verify.

The live configuration is only ever the old or the new one: a rejected
candidate never reaches it, and a crash at any point leaves one or the other.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import signal
import time
from dataclasses import dataclass
from typing import Callable

from lbctl import guard, model
from lbctl.errors import ConfigError, LbctlError, ReloadError, RollbackError
from lbctl.targets.base import Change, Checkpoint
from lbctl.targets.base import Target
from lbctl.targets import start


@dataclass(frozen=True)
class Outcome:
    """What one deploy did.  ``result``: unchanged | applied | written (process not running)."""

    target: str
    result: str
    message: str
    change: Change | None = None


def deploy(target: Target, desired: model.Desired | None = None, candidate: str | None = None,
           action: str = "apply", fence: Callable[[], None] | None = None,
           policy: guard.Policy = guard.Policy()) -> Outcome:
    """Make ``target`` serve ``desired`` (or the ``candidate`` text, for a rollback).

    ``fence`` is called right before anything is written; it raises when this
    process may no longer write (a leader that lost its lock).  ``policy`` is the
    removal guard's (``guarded``).  Every outcome but
    "unchanged" is recorded (``TargetState.record``: last apply, audit log, metrics).

    :raises LbctlError: the change was refused or failed; the message says whether
        the previous configuration is live again.  ``RollbackError`` if it is not.
    """
    with target.state.lock():
        change = target.plan(desired) if candidate is None else target.plan_text(candidate)
        guarded(target, change, policy, action)
        if change.noop:
            why = target.stale()  # the process runs an older file: an interrupted apply, drift
            if why:
                return finish_interrupted(target, change, why)
            return Outcome(target.name, "unchanged", f"{target.name}: {target.path} is up to date", change)
        started = time.monotonic()
        before, after = digest(change.live), digest(change.candidate)

        def record(result: str, message: str, now: str | None) -> None:
            target.state.record(result, message, before, now, changed(change), action, time.monotonic() - started)

        fence = fence or (lambda: None)
        running = target.running()  # raises if it runs but cannot be reached: nothing changed yet
        fence()
        live_first = target.runtime(change)  # HAProxy: members changed through the Runtime API
        try:
            target.check(change)
            fence()
            target.state.mark_pending()
            checkpoint = target.apply(change)
        except LbctlError as exc:  # apply undoes its own partial work: nothing changed
            target.state.clear_pending()
            record("failed", str(exc), before)
            raise
        fault("swapped")
        if not running:
            target.state.clear_pending()
            message = (f"{target.name}: wrote {target.path}; {target.kind} is not running, "
                       f"so it takes effect when it starts{start.hint(target.settings)}")
            record("written", message, after)
            return Outcome(target.name, "written", message, change)
        try:
            if not live_first:
                target.reload(change)
            fault("reloaded")
            target.verify()
        except LbctlError as exc:
            restore(target, checkpoint, change, exc, record)
        target.state.clear_pending()
        how = "through the runtime API, without a reload" if live_first else f"and {target.kind} {target.reloaded}"
        message = f"{target.name}: applied {target.path} {how}"
        record("applied", message, after)
        return Outcome(target.name, "applied", message, change)


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
    target.verify()
    target.state.clear_pending()
    message = f"{target.name}: reloaded {target.path}, which {why}"
    target.state.record("applied", message, None, digest(change.candidate))
    return Outcome(target.name, "applied", message, change)


def reload_in_place(target: Target) -> Outcome:
    """``lbctl reload``: check the configuration in place and make the running
    process load it (confirmed and verified like an apply).

    :raises ConfigError: there is no file.  :raises ValidationError: it does not pass the check.
    :raises ReloadError, VerifyError: the process still runs what it ran.
    """
    with target.state.lock():
        live = target.plan_text("").live
        if live is None:
            raise ConfigError(f"{target.name}: {target.path} does not exist; lbctl apply writes it")
        change = Change(target.name, live, live)
        target.check(change)
        if not target.running():
            raise ReloadError(f"{target.name}: {target.kind} is not running, so there is nothing to reload; "
                              f"start it{start.hint(target.settings)}")
        return finish_interrupted(target, change, target.stale() or f"the running {target.kind} had loaded already")


def restore(target: Target, checkpoint: Checkpoint, change: Change, failure: LbctlError,
            record: Callable[[str, str, str | None], None]) -> None:
    """Put the previous configuration back after ``failure`` and raise.

    :raises LbctlError: ``failure``'s kind, saying the previous config is live again.
    :raises RollbackError: the previous config could not be restored.
    """
    back = Change(change.target, change.candidate, change.live or "")
    try:
        target.rollback(checkpoint)
        if change.live is not None:
            target.reload(back)
            target.verify()
    except LbctlError as second:
        message = f"{failure}; restoring the previous configuration also failed: {second}"
        record("rollback-failed", message, digest(change.candidate))
        raise RollbackError(message) from None
    target.state.clear_pending()
    message = f"{failure}; restored the previous configuration, which is live again"
    record("rolled-back", message, digest(change.live))
    raise type(failure)(message) from None


def changed(change: Change, limit: int = 50) -> list[str]:
    """What a change does, for the audit log: the target's summary, or the changed lines."""
    if change.summary:
        return list(change.summary[:limit])
    lines = [line.rstrip("\n") for line in difflib.unified_diff((change.live or "").splitlines(), change.candidate.splitlines(),
                                                                 lineterm="", n=0)
             if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    return lines[:limit] + ([f"... {len(lines) - limit} more lines"] if len(lines) > limit else [])


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def fault(point: str) -> None:
    """Crash here, as by ``kill -9``, when LBCTL_FAULT names this point (crash-safety tests)."""
    if os.environ.get("LBCTL_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
