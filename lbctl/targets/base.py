"""The Target contract: the only thing ``deploy`` and the controller see of a load balancer.

Every method documents what it raises; none exits the process.
"""

from __future__ import annotations

import abc
import difflib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lbctl import guard, model
from lbctl.targets.state import TargetState


@dataclass(frozen=True)
class Change:
    """What one apply would do: the live text (None if there is no file) and the candidate."""

    target: str
    live: str | None
    candidate: str
    summary: tuple[str, ...] = field(default=())  # human lines: pools and members changed

    @property
    def noop(self) -> bool:
        return self.live == self.candidate

    def diff(self, name: str) -> str:
        return "".join(difflib.unified_diff((self.live or "").splitlines(keepends=True),
                                            self.candidate.splitlines(keepends=True),
                                            f"{name} (live)", f"{name} (rendered)"))


@dataclass(frozen=True)
class Checkpoint:
    """What ``rollback`` needs: the backup id of the previous config (None: there was none)."""

    target: str
    backup_id: str | None
    data: Any = None


class Target(abc.ABC):
    """A load balancer lbctl writes to."""

    kind: ClassVar[str]
    reloaded: ClassVar[str] = "reloaded"  # what ``reload`` did, for messages
    name: str
    state: TargetState  # lock, last-apply record, pending-reload marker
    recheck_after: float | None = None  # set by ``plan`` when a later sync will have work (drains)
    # Live through the Runtime API, not yet in the file: live = the file, candidate = what runs
    # (see ``deploy.flush``), and since when (monotonic) the file is behind.
    unwritten: Change | None = None
    unwritten_since: float | None = None
    unverified: bool = False  # a runtime change awaits ``verify`` (``deploy.confirm``, before the file write)
    write_delay: float = 0.0  # how long the file may stay behind the runtime state (lbctl watch)

    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the load balancer answers (if not, a written change waits for its start)."""

    @abc.abstractmethod
    def plan(self, desired: model.Desired) -> Change:
        """The candidate for ``desired`` against what is live; no side effects.

        :raises ConfigError: the model cannot be expressed for this target.
        """

    @abc.abstractmethod
    def plan_text(self, candidate: str) -> Change:
        """Like ``plan``, for a given candidate text (a backup being restored)."""

    @abc.abstractmethod
    def served(self, text: str | None) -> guard.Served:
        """What a configuration in this target's text form (``Change.live`` or
        ``Change.candidate``) serves, for the removal guard.  Pure."""

    def served_change(self, change: Change) -> tuple[guard.Served, guard.Served]:
        """What the live configuration and the candidate serve (``served`` of each)."""
        return self.served(change.live), self.served(change.candidate)

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

    def runtime(self, change: Change) -> bool:
        """Make ``change`` live without a reload, if this target can (after the check,
        before the swap).

        True: it is live and confirmed.  False: nothing usable was done; go the
        normal way (a reload also repairs anything half done).  Never raises.
        """
        return False

    def undo_runtime(self, change: Change) -> None:
        """Put back the running state of ``change.live`` after ``runtime(change)``
        succeeded and a later step failed, and confirm it by reading it back.

        :raises RollbackError: it could not be put back or confirmed.
        """
        raise NotImplementedError

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

        :raises LbctlError: the process runs but cannot be reached.
        """
        return self.runtime_drift()

    def runtime_drift(self) -> list[str]:
        """Where the running state (servers changed through a runtime API) differs
        from the configuration in place, one line each (``runtime_drifted`` says
        whether there was any).  None known here."""
        return []

    runtime_drifted = False

    def repair_runtime(self) -> str | None:
        """Make the running state the configuration's in place again; how it was
        done ("put back ..."), or None if nothing differed.  Only in one-shot
        commands: a watch's own runtime changes are its truth.

        :raises ReloadError: the repair needed a reload, and it failed.
        """
        return None

    @abc.abstractmethod
    def verify(self) -> None:
        """The process runs the new config and answers its probes.

        :raises VerifyError: it does not.
        """

    @abc.abstractmethod
    def rollback(self, checkpoint: Checkpoint) -> None:
        """Put back the config from ``checkpoint`` (``deploy`` then reloads and verifies).

        :raises RollbackError: it could not.
        """

    @abc.abstractmethod
    def status(self) -> dict:
        """What ``lbctl status`` shows: live hash, last apply, backups, process."""
