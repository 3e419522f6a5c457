"""What the operator page reads, and how often: the process's state (``State``, handed
over by ``lbctl watch`` or ``lbctl ui``), each target's status and live member states,
and the tail of the audit log.  The reads that touch a load balancer or a file are
cached (``Cached``) and shared between requests; the live member states are read for the
pools a page shows only (at 10,000 HAProxy backends, ``show stat <backend>`` for each of a
page's 100, not ``show stat`` of 50,000 servers), once a second for every reader of that page."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from lbctl import model, redact
from lbctl.console import target_status
from lbctl.errors import LbctlError
from lbctl.ui import view

log = logging.getLogger(__name__)

AUDIT_TAIL = 512 * 1024  # bytes of the audit log read (about the last 1,500 entries)
LIVE_TTL = 1.0  # seconds a live read is shared
# seconds a target's status (hash, drift, process) is shared; when older, a request gets it
# and a new one is read in the background (a drift check compares every running server)
STATUS_TTL = 10.0


@dataclass(frozen=True)
class State:
    """The process's state as the page sees it; the watch hands over a new one each time,
    never one it changes afterwards (the model is immutable)."""

    desired: model.Desired | None
    targets: tuple = ()  # lbctl.targets.base.Target
    static: frozenset[str] = frozenset()
    discovered: frozenset[str] = frozenset()
    audit_log: Path | None = None
    refused_routes: tuple = ()
    refusals: Mapping[str, str] = field(default_factory=dict)
    data_age: float | None = None
    source: str = "inventory"
    leading: bool | None = None  # None: no election
    why: Callable[[Iterable[str]], Mapping[str, Mapping[str, dict]]] | None = None  # discovery's failing checks


class Cached:
    """``compute(key)`` at most once every ``ttl`` seconds per ``key``, shared by threads: a
    request that finds it stale computes it while the others wait for that answer.  With
    ``background``, a stale value of the same key is answered at once while one thread
    computes the next (only the first answer for a key is waited for)."""

    def __init__(self, compute: Callable[[Any], Any], ttl: float, clock: Callable[[], float] = time.monotonic,
                 background: bool = False):
        self.compute, self.ttl, self.clock, self.background = compute, ttl, clock, background
        self.lock = threading.Lock()
        self.key: Any = None
        self.value: Any = None
        self.at: float | None = None
        self.refreshing: threading.Thread | None = None

    def get(self, key: Any) -> Any:
        with self.lock:
            now = self.clock()
            if self.at is not None and key == self.key and now - self.at < self.ttl:
                return self.value
            if self.background and self.at is not None and key == self.key:
                if self.refreshing is None:
                    self.refreshing = threading.Thread(target=self.refresh, args=(key,), daemon=True,
                                                       name="lbctl-ui-refresh")
                    self.refreshing.start()
                return self.value
            self.value, self.key, self.at = self.compute(key), key, now
            return self.value

    def refresh(self, key: Any) -> None:
        value = None
        try:
            value = self.compute(key)
        except Exception:  # the last value stays; the next stale request tries again
            log.exception("the operator page's background read failed")
        finally:
            with self.lock:
                self.refreshing = None
                if value is not None and key == self.key:
                    self.value, self.at = value, self.clock()


class Reader:
    """``view.Known`` from ``state()``, the reads of targets and the audit log cached."""

    def __init__(self, state: Callable[[], State], clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.statuses = Cached(lambda targets: tuple(status_of(t) for t in targets), STATUS_TTL, clock,
                               background=True)
        # keyed by the targets and the pools a page shows: a page costs its own pools' members
        self.live = Cached(lambda key: {t.name: live_of(t, key[1]) for t in key[0]}, LIVE_TTL, clock)
        self.audit = Cached(tail, LIVE_TTL, clock)

    def known(self) -> view.Known:
        s = self.state()
        statuses = self.statuses.get(s.targets)
        role = "leader" if s.leading is None or s.leading else "follower"
        targets = tuple({**st, "role": role if t.shared else "leader"} for t, st in zip(s.targets, statuses))
        return view.Known(s.desired, s.static, s.discovered, targets, lambda pools: self.live.get((s.targets, pools)),
                          self.audit.get(s.audit_log) if s.audit_log else (), s.refused_routes, s.refusals,
                          s.data_age, s.source, role, s.why or view.no_checks)


def status_of(target) -> dict:
    """``lbctl status --json`` of one target, with its VRRP states and what it says of live states."""
    try:
        out = target_status(target)
    except LbctlError as exc:
        out = {"target": target.name, "kind": target.kind, "config": target.location, "sha256": None,
               "last_apply": target.state.last(), "process": {"summary": redact.mask(str(exc))}, "drift": []}
    out["live_note"] = target.live_note
    if hasattr(target, "node_report"):
        try:
            out["vrrp"] = target.node_report()["vrrp"]
        except (LbctlError, OSError) as exc:
            out["vrrp"] = {"error": str(exc)}
    return out


def live_of(target, pools: tuple[str, ...]) -> dict | str | None:
    """The target's live member states (of ``pools``), or why it cannot say (a text), or None (the kind cannot tell)."""
    try:
        return target.live_members(pools)
    except (LbctlError, OSError) as exc:
        return f"cannot read member states: {redact.mask(str(exc))}"


def tail(path: Path) -> tuple[dict, ...]:
    """The audit log's last entries (the last ``AUDIT_TAIL`` bytes), oldest first."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - AUDIT_TAIL))
            data = f.read()
    except OSError:
        return ()
    lines = data.splitlines()
    if size > AUDIT_TAIL:
        lines = lines[1:]  # the first may be cut
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return tuple(out)
