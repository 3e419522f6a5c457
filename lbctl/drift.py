"""Drift: where what runs differs from the configuration file in place.  Pure.

lbctl keeps, per target, the record of what the running process loaded
(``<state_dir>/<target>/loaded.json``, written when an apply, reload or
rollback is verified, and when the file of a runtime API change is written):
the file's signature (inode, modification time, size: every atomic write makes
a new inode) and the identity of the process that
runs it (HAProxy: master PID, its reload counter and the worker PIDs from the
master CLI's ``show proc``; nginx: master and worker PIDs).  Later:

- same identity: the process still runs the recorded file; if the file's
  signature differs, the file is ahead of the process (written without a reload, or
  edited by hand);
- another identity (restarted, or reloaded by someone else): the process loaded
  whatever the file was when its newest worker started, so the file is ahead
  if it was modified after that.

Separately, a file whose hash is not the one the last apply left was changed
outside lbctl.  Runtime state that differs from the file (servers changed on
the stats socket) is ``RuntimeChanges.runtime_drift``'s part of the report.
"""

from __future__ import annotations

from dataclasses import dataclass

MARGIN = 0.02  # seconds: process start times are counted in clock ticks (10 ms)


@dataclass(frozen=True)
class Process:
    """A running load balancer: who it is, and when its newest worker started
    (seconds since boot, None if unknown)."""

    identity: tuple
    started: float | None = None


def record(signature: list | None, process: Process) -> dict:
    """What to keep in loaded.json after a verified change."""
    return {"file": signature, "identity": list(process.identity)}


def behind(loaded: dict | None, process: Process, signature: list | None, modified: float | None) -> bool | None:
    """Whether the file (its ``signature``, last ``modified`` in seconds since boot) is
    ahead of what ``process`` loaded; None when that cannot be told."""
    if loaded is not None and loaded.get("identity") == list(process.identity):
        return loaded.get("file") != signature
    if process.started is None or modified is None:
        return None
    return modified > process.started + MARGIN


def report(kind: str, path: str, ahead: bool | None, last: dict | None, sha256: str | None) -> list[str]:
    """The drift lines for ``plan``, ``status`` and ``apply``."""
    lines = []
    if ahead:
        lines.append(f"{path} is ahead of the running {kind}, which loaded an older version "
                     "(apply or lbctl reload makes it load this one)")
    written = (last or {}).get("hash_after")
    if written and sha256 and written != sha256:
        lines.append(f"{path} was changed outside lbctl since the last apply (sha256 {sha256[:12]}, "
                     f"lbctl left {written[:12]})")
    return lines
