"""The audit log: one JSON line per apply or rollback (time, target, hashes before
and after, what changed, result, leader), appended and synced before the next."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lbctl import redact
from lbctl.errors import ConfigError


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640))
        except OSError as exc:
            raise ConfigError(f"audit_log: cannot open {path}: {exc.strerror}") from None

    def __call__(self, entry: dict) -> None:
        """Append ``entry``, secrets masked.  One ``write`` on an O_APPEND file: lines never interleave."""
        line = (json.dumps(redact.scrub(entry), sort_keys=True, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read(path: Path) -> list[dict]:
    """Every entry of an audit log, oldest first (for ``lbctl`` users and tests)."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
