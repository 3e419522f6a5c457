"""The file writes that runtime API changes leave behind in ``lbctl watch``
(``deploy(defer=True)``): when each is due, and who does it.

A change made through HAProxy's Runtime API is live once read back; its file
follows at most ``write_delay`` later, with one verification (process, probes) and
one write for every change in between.  Both (the process check, the probes, the
file and its fsync) run on a thread of their own (``deploy.flush_begin``), so a
change that arrives meanwhile is applied at once instead of waiting for them; the
controller's loop finishes the write (``deploy.written``, which undoes the changes
if they did not verify) when it ends.  Before a re-read or a stop,
everything is written and waited for (docs/runtime-api.md).
"""

from __future__ import annotations

import time
from typing import Callable

from lbctl import deploy
from lbctl.errors import LbctlError
from lbctl.targets.base import RuntimeChanges, Target


def runtime_targets(targets: list[Target]) -> list[RuntimeChanges]:
    """The targets that take changes through a runtime API (and write their file later)."""
    return [t for t in targets if isinstance(t, RuntimeChanges)]


def ended(target: RuntimeChanges) -> bool:
    return target.writing is not None and not target.writing.thread.is_alive()


def due_at(targets: list[Target]) -> float | None:
    """When (``time.monotonic``) the loop must next write or finish a write; None if never."""
    due = [0.0 if ended(t) else t.unwritten_since + t.write_delay
           for t in runtime_targets(targets) if ended(t) or (t.writing is None and t.unwritten_since is not None)]
    return min(due) if due else None


def write(targets: list[Target], fence_of: Callable[[Target], Callable[[], None] | None], every: bool,
          done: Callable[[], None], failed: Callable[[LbctlError], None]) -> None:
    """Finish the writes that ended, start those that are due (``every``: write and wait
    for all of it now).  ``done`` wakes the loop when a write ends; ``failed`` hears of a
    change that was undone (it did not verify, or its file could not be written)."""
    now = time.monotonic()
    for target in runtime_targets(targets):
        due = target.unwritten_since is not None and (every or target.unwritten_since + target.write_delay <= now)
        if not (due or ended(target) or (every and target.writing is not None)):
            continue
        fence = fence_of(target)
        try:
            with target.state.lock():
                if every:
                    deploy.flush(target, fence)  # waits for a write in progress, then writes the rest
                elif ended(target):
                    deploy.written(target)
                else:
                    deploy.flush_begin(target, fence or (lambda: None), done)  # verifies, then writes
        except LbctlError as exc:
            failed(exc)
