"""What lbctl keeps per target in ``<state_dir>/<target>/``: the apply lock, the
record of the last apply, and the marker of a swap whose reload is unconfirmed.
Every kind of target has one; file targets keep their backups beside it."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from lbctl import redact
from lbctl.errors import ApplyError
from lbctl.targets import files


log = logging.getLogger("lbctl")


class TargetState:
    def __init__(self, directory: Path, name: str, lock_timeout: float) -> None:
        self.directory = directory
        self.name = name
        self.lock_timeout = lock_timeout
        self.listeners: list[Callable[[dict], None]] = []  # the audit log, metrics
        self.leader: bool | None = None  # set by a controller that elects a leader
        self.hold = False  # keep the lock after the block: a runtime change waits for its file write
        self._held: contextlib.ExitStack | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One apply at a time; re-entrant while this process keeps the lock (``hold``).

        :raises LockedError: still held after the lock timeout.
        """
        if self._held is not None:
            try:
                yield
            finally:
                if not self.hold:
                    self.release()
            return
        held = contextlib.ExitStack()
        held.enter_context(files.apply_lock(self.directory / "lock", self.lock_timeout, self.name))
        try:
            yield
        finally:
            if self.hold:
                self._held = held
            else:
                held.close()

    def release(self) -> None:
        """Let go of a lock kept by ``hold`` (nothing if none is kept)."""
        held, self._held, self.hold = self._held, None, False
        if held is not None:
            held.close()

    def record(self, result: str, message: str, before: str | None, after: str | None,
               changed: Iterable[str] = (), action: str = "apply", duration: float | None = None) -> None:
        """Remember one apply or rollback for ``lbctl status`` and tell the listeners
        (best effort: a failing record never masks the result it records)."""
        entry = self.entry(action, result, message, before=before, after=after, changed=changed, duration=duration)
        # Not fsync'd (it is on every watch round's path): it only tells ``lbctl status`` and drift
        # reports about the last apply; after a power cut it may be missing or an older one (until
        # the next apply), which no decision reads.  The audit log is the durable record.
        self.keep("last-apply.json", entry, durable=False)
        self.tell(entry)

    def entry(self, action: str, result: str, message: str, before: str | None = None, after: str | None = None,
              changed: Iterable[str] = (), duration: float | None = None) -> dict:
        """One record, every secret masked (it goes to files and to the audit log)."""
        return redact.scrub({"time": now(), "target": self.name,
                             "action": action, "result": result, "message": message, "hash_before": before,
                             "hash_after": after, "changed": list(changed), "leader": self.leader,
                             "duration_s": None if duration is None else round(duration, 4)})

    def keep(self, name: str, entry: dict, durable: bool = True) -> None:
        """Write ``entry`` to the state file ``name``, unless it holds that already
        (``loaded.json`` after each Runtime API change: no fsync for nothing)."""
        text = json.dumps(entry, indent=1) + "\n"
        path = self.directory / name
        try:
            if path.read_text() == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files.atomic_write(path, text, durable=durable)
        except (OSError, ApplyError):
            pass

    def tell(self, entry: dict) -> None:
        for listener in self.listeners:
            try:
                listener(entry)
            except Exception as exc:  # noqa: BLE001 - an observer must not break an apply
                log.error("%s: recording the %s failed: %s", self.name, entry["action"], exc)

    # -- the removal guard: the last refused change, and an operator's approval of it ----

    def refuse(self, message: str, live: str | None, candidate: str | None, action: str = "apply") -> None:
        """Remember a change the guard refused (for ``lbctl status`` and ``lbctl approve``)."""
        entry = self.entry(action, "refused", message, before=live, after=live)
        self.keep("refused.json", {**entry, "candidate": candidate})
        self.tell(entry)

    def refused(self) -> dict | None:
        return read_json(self.directory / "refused.json")

    def clear_refused(self) -> None:
        """A change passed the guard: no refusal is pending, and no approval either."""
        for name in ("refused.json", "approved"):
            (self.directory / name).unlink(missing_ok=True)

    def approve(self, candidate: str) -> None:
        """Let the refused change whose candidate hashes to ``candidate`` through once."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self.directory / "approved", candidate + "\n")

    def approval(self) -> str | None:
        try:
            return (self.directory / "approved").read_text().strip() or None
        except OSError:
            return None

    def take_approval(self, candidate: str | None) -> bool:
        """True if the operator approved this candidate.  Any approval is used up here:
        one that names another candidate approved a change that is no longer asked for."""
        approved = self.approval()
        if approved is None:
            return False
        (self.directory / "approved").unlink(missing_ok=True)
        return candidate is not None and approved == candidate

    def last(self) -> dict | None:
        return read_json(self.directory / "last-apply.json")

    def loaded(self) -> dict | None:
        """What the running process loaded, as of the last verified change (drift.py)."""
        return read_json(self.directory / "loaded.json")

    def mark_pending(self) -> None:
        """A swap is about to happen; its reload is not confirmed yet."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self.directory / "pending-reload", "1\n")

    def clear_pending(self) -> None:
        (self.directory / "pending-reload").unlink(missing_ok=True)

    def pending(self) -> bool:
        return (self.directory / "pending-reload").exists()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
