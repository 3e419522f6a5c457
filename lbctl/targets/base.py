"""The Target contract: the only thing ``deploy`` and the controller see of a load balancer.

``Target`` is what every kind provides; ``Restorable`` (a configuration text that
can be put in place again) and ``RuntimeChanges`` (changes made to the running
process without a reload) are optional capabilities: a kind inherits them to
declare them, and callers test them with ``isinstance``.  Every method documents
what it raises; none exits the process.
"""

from __future__ import annotations

import abc
import difflib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Protocol, TypeVar

from lbctl import guard, model
from lbctl.targets import files
from lbctl.targets.state import TargetState


class Detail(Protocol):
    """A kind's own account of a change behind its texts (BIG-IP: the operations of its plan)."""

    @property
    def noop(self) -> bool:
        """Whether applying the change would do nothing."""


D = TypeVar("D", bound=Detail)


@dataclass(frozen=True)
class Change(Generic[D]):
    """What one apply would do: the live text (None if there is no file) and the candidate.

    ``detail`` is what the target's ``plan`` put there for its own ``check``,
    ``apply`` and ``verify``; only the target reads it.  It is None in a change
    made from texts alone (``plan_text``, and what ``deploy`` makes of texts).
    """

    target: str
    live: str | None
    candidate: str
    summary: tuple[str, ...] = field(default=())  # human lines: pools and members changed
    detail: D | None = None

    @property
    def noop(self) -> bool:
        return self.live == self.candidate if self.detail is None else self.detail.noop

    def diff(self, name: str) -> str:
        return "".join(difflib.unified_diff((self.live or "").splitlines(keepends=True),
                                            self.candidate.splitlines(keepends=True),
                                            f"{name} (live)", f"{name} (rendered)"))


@dataclass(frozen=True)
class Checkpoint:
    """What ``rollback`` needs: the change ``apply`` made, and the backup id of the
    previous config (None: there was none, or the target keeps no backups)."""

    target: str
    backup_id: str | None
    change: Change


class Target(abc.ABC):
    """A load balancer lbctl writes to."""

    kind: ClassVar[str]
    reloaded: ClassVar[str] = "reloaded"  # what ``reload`` did, for messages
    name: str
    location: str  # what messages name: the config file, or the device and partition
    shared: bool = False  # shared with other controllers: only the elected leader writes (lbctl watch)
    state: TargetState  # lock, last-apply record, pending-reload marker
    recheck_after: float | None = None  # set by ``plan`` when a later sync will have work (drains)
    live_note: ClassVar[str] = "member states are not reported by this kind"  # what the operator page says

    def live_members(self, pools: Iterable[str] | None = None) -> dict[str, dict[str, dict]] | None:
        """What the running load balancer reports of each member (of ``pools`` only, if given:
        the page's), for the operator page:
        ``{pool: {member: {"live": up|down|maint|drain|unknown, "check": str, "sessions": int|None}}}``;
        None when the kind cannot tell (``live_note`` says why).

        :raises LbctlError: the load balancer cannot be reached.
        """
        return None

    def start_hint(self) -> str:
        """How an operator starts the load balancer, for messages when it is not
        running (``: <command> (docs/running.md)``), or "" if lbctl does not say.  Never raises."""
        return ""

    def endpoints(self) -> str:
        """Where lbctl reaches the running load balancer, for ``lbctl watch``'s start
        line (``, master CLI ...``), or "".  Never raises."""
        return ""

    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the load balancer answers (if not, a written change waits for its start)."""

    @abc.abstractmethod
    def plan(self, desired: model.Desired) -> Change:
        """The candidate for ``desired`` against what is live; no side effects.

        :raises ConfigError: the model cannot be expressed for this target.
        """

    @abc.abstractmethod
    def served(self, text: str | None) -> guard.Served:
        """What a configuration in this target's text form (``Change.live`` or
        ``Change.candidate``) serves, for the removal guard.  Pure."""

    def served_change(self, change: Change) -> tuple[guard.Served, guard.Served]:
        """What the live configuration and the candidate serve (``served`` of each)."""
        return self.served(change.live), self.served(change.candidate)

    def keep_alive(self, allowed: bool) -> bool:
        """Let clients keep connections alive (normal), or answer every response with
        ``Connection: close`` from now on (lbctl drain-node, docs/high-availability.md).
        False: this target cannot switch it at runtime.  :raises CommandError: it could not reach it."""
        return False

    @abc.abstractmethod
    def check(self, change: Change) -> None:
        """Validate the candidate with the target's own checker; the live config is untouched.

        :raises ValidationError: rejected.  :raises CommandError: the checker could not run.
        """

    @abc.abstractmethod
    def apply(self, change: Change) -> Checkpoint:
        """Put the candidate in place (backing up the live one).  Undoes its own partial work.

        :raises ApplyError: nothing was changed.
        """

    @abc.abstractmethod
    def reload(self, change: Change) -> None:
        """Make the running process take the config in place, and confirm it did.

        :raises ReloadError: it did not; the previous config still serves.
        """

    def resume(self, change: Change) -> None:
        """Reload a change that an interrupted run put in place without confirming it.

        :raises ReloadError: as ``reload``.
        """
        self.reload(change)

    def stale(self) -> str | None:
        """Why the process must load the configuration in place although nothing
        changed ("which ..."), or None.  :raises LbctlError: it runs but cannot be reached."""
        return "an interrupted apply had written" if self.state.pending() and self.running() else None

    def note_loaded(self) -> None:
        """Remember that the running process serves the configuration in place (a
        runtime change was written to it), so drift does not call the file ahead."""

    def drift(self) -> list[str]:
        """Where what runs differs from the configuration in place, one line each (drift.py).
        None known here.

        :raises LbctlError: the process runs but cannot be reached.
        """
        return []

    @abc.abstractmethod
    def verify(self, change: Change) -> None:
        """The process runs ``change.candidate`` (put in place by ``apply``, a runtime
        change or ``rollback``) and answers its probes.

        :raises VerifyError: it does not.
        """

    @abc.abstractmethod
    def rollback(self, checkpoint: Checkpoint) -> Change:
        """Put back the config from ``checkpoint``; the change that did it (from the
        failed candidate back to the previous config), which ``deploy`` then reloads
        and verifies.

        :raises RollbackError: it could not.
        """

    @abc.abstractmethod
    def status(self) -> dict:
        """What ``lbctl status`` shows: live hash, last apply, backups, process."""


class Restorable(Target):
    """A target whose configuration is a text that can be put in place again (a
    backup: ``lbctl rollback``; the file in place: ``lbctl reload``)."""

    @abc.abstractmethod
    def plan_text(self, candidate: str) -> Change:
        """Like ``plan``, for a given candidate text (a backup being restored).

        :raises ApplyError: the live config cannot be read.
        """

    @abc.abstractmethod
    def backup(self, backup_id: str | None) -> files.Backup:
        """The backup called ``backup_id``, or (None) the newest of the config in place.

        :raises ConfigError: there is no such backup.
        """


@dataclass
class Writing:
    """A file write of runtime changes on a thread of its own (``deploy.flush_begin``):
    ``pending`` is what it writes, ``error`` why it failed, ``action`` what failed (the
    verification of the changes, "apply", or the write)."""

    pending: Change
    thread: threading.Thread
    error: Exception | None = None
    action: str = "write"


class RuntimeChanges(Target):
    """A target that makes changes to the running process without a reload (HAProxy's
    Runtime API), whose file may be written later (``deploy.flush``)."""

    # Live through the Runtime API, not yet in the file: live = the file, candidate = what runs
    # (see ``deploy.flush``), and since when (monotonic) the file is behind.
    unwritten: Change | None = None
    unwritten_since: float | None = None
    unverified: bool = False  # a runtime change awaits ``verify`` (``deploy.confirm``, before the file write)
    writing: Writing | None = None  # its file being written on a thread of its own (``deploy.flush_begin``)
    write_delay: float = 0.0  # how long the file may stay behind the runtime state (lbctl watch)
    runtime_drifted = False  # whether the last ``runtime_drift`` found any

    @abc.abstractmethod
    def runtime(self, change: Change) -> bool:
        """Make ``change`` live without a reload, if this target can (after the check,
        before the swap).

        True: it is live and confirmed.  False: nothing usable was done; go the
        normal way (a reload also repairs anything half done).  Never raises.
        """

    @abc.abstractmethod
    def undo_runtime(self, change: Change) -> None:
        """Put back the running state of ``change.live`` after ``runtime(change)``
        succeeded and a later step failed, and confirm it by reading it back.

        :raises RollbackError: it could not be put back or confirmed.
        """

    @abc.abstractmethod
    def runtime_drift(self) -> list[str]:
        """Where the running state (servers changed through the runtime API) differs
        from the configuration in place, one line each; sets ``runtime_drifted``.
        Never raises (a socket that does not answer is a line)."""

    @abc.abstractmethod
    def repair_runtime(self) -> str | None:
        """Make the running state the configuration's in place again; how it was
        done ("put back ..."), or None if nothing differed.  Only in one-shot
        commands: a watch's own runtime changes are its truth.

        :raises ReloadError: the repair needed a reload, and it failed.
        """
