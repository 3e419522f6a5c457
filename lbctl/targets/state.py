"""What lbctl keeps per target in ``<state_dir>/<target>/``: the apply lock, the
record of the last apply, and the marker of a swap whose reload is unconfirmed.
Every kind of target has one; file targets keep their backups beside it."""

from __future__ import annotations

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

    def lock(self) -> Iterator[Path]:
        """One apply at a time.  :raises LockedError: still held after the lock timeout."""
        return files.apply_lock(self.directory / "lock", self.lock_timeout, self.name)

    def record(self, result: str, message: str, before: str | None, after: str | None,
               changed: Iterable[str] = (), action: str = "apply", duration: float | None = None) -> None:
        """Remember one apply or rollback for ``lbctl status`` and tell the listeners
        (best effort: a failing record never masks the result it records)."""
        entry = redact.scrub({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "target": self.name,
                 "action": action, "result": result, "message": message, "hash_before": before,
                 "hash_after": after, "changed": list(changed), "leader": self.leader,
                 "duration_s": None if duration is None else round(duration, 4)})
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files.atomic_write(self.directory / "last-apply.json", json.dumps(entry, indent=1) + "\n")
        except (OSError, ApplyError):
            pass
        for listener in self.listeners:
            try:
                listener(entry)
            except Exception as exc:  # noqa: BLE001 - an observer must not break an apply
                log.error("%s: recording the %s failed: %s", self.name, action, exc)

    def last(self) -> dict | None:
        try:
            return json.loads((self.directory / "last-apply.json").read_text())
        except (OSError, ValueError):
            return None

    def mark_pending(self) -> None:
        """A swap is about to happen; its reload is not confirmed yet."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files.atomic_write(self.directory / "pending-reload", "1\n")

    def clear_pending(self) -> None:
        (self.directory / "pending-reload").unlink(missing_ok=True)

    def pending(self) -> bool:
        return (self.directory / "pending-reload").exists()
