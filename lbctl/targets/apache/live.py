"""The apache target's runtime path: member changes through balancer-manager, without
a graceful restart, read back; the file stays the source of truth (``BalancerPersist
Off``: any graceful starts again from it).  docs/apache.md#runtime-changes.

The planning (``runtime.plan``) compares models, so the target keeps the model of
each text it rendered (``plan``) and of the file in place (``<state_dir>/model.json``,
written by ``apply``, used only while the file is byte for byte its render).
"""

from __future__ import annotations

import logging

import msgspec

from lbctl import model
from lbctl.digests import digest
from lbctl.errors import CommandError, LbctlError, ReloadError, RollbackError
from lbctl.targets.apache import runtime, view, vhosts, worker_drift
from lbctl.targets.apache.manager import Manager, NoSpareSlot
from lbctl.targets.base import Change, Checkpoint, RuntimeChanges
from lbctl.targets.state import read_json

log = logging.getLogger("lbctl.apache")
MODEL_FILE = "model.json"
KEPT = 4  # models of rendered texts kept in memory (the live one, the candidate, a rollback's)


class BalancerManagerChanges(RuntimeChanges):
    """Mixed into ApacheTarget (a FileTarget) before it: ``plan`` and ``apply`` keep
    models; ``graceful`` is the target's."""

    refused: tuple | None = None  # the last change balancer-manager could not make
    checked: str | None = None  # the last text that passed ``apache2 -t`` (the target's ``check``)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: dict[tuple, Manager] = {}  # one keep-alive client per VirtualHost's balancer-manager
        self.write_delay = self.settings.write_delay_ms / 1000
        self.models: dict[str, model.Desired] = {}  # sha256 of a text lbctl rendered -> its model

    def graceful(self) -> None:
        raise NotImplementedError

    def managers(self, text: str | None) -> list[tuple[vhosts.VirtualHost, Manager]]:
        """The balancer-managers of the VirtualHosts of ``text`` (the file Apache runs)."""
        out = []
        for v in vhosts.managed(text, view.MANAGER_PATH):
            key = (v.address, v.host, v.tls)
            if key not in self.sessions:
                self.sessions[key] = Manager(v.address, host=v.host, path=v.path, tls=v.tls)
            out.append((v, self.sessions[key]))
        return out

    def live_members(self, pools=None) -> dict[str, dict[str, dict]]:
        """The workers of each balancer (of ``pools`` only, if given) by ``host:port`` (the
        page finds members by address), as the first VirtualHost holding it serves them;
        over connections of its own (the page's thread must not share the runtime path's).

        :raises CommandError: a balancer-manager does not answer."""
        wanted = None if pools is None else set(pools)
        out: dict[str, dict[str, dict]] = {}
        for v in vhosts.managed(self.running_text(), view.MANAGER_PATH):
            manager = Manager(v.address, host=v.host, path=v.path, tls=v.tls)
            try:
                for name, b in manager.read().items():
                    if wanted is None or name in wanted:
                        out.setdefault(name, {f"{w.host}:{w.port}": worker_live(w) for w in b.workers})
            finally:
                manager.close()
        return out

    def forget_states(self) -> None:
        """After a restart: every nonce and runtime-added worker is gone."""
        for manager in self.sessions.values():
            manager.state = None

    # -- models of rendered texts ----------------------------------------------------

    def plan(self, desired: model.Desired) -> Change:
        change = super().plan(desired)
        if len(self.models) >= KEPT:
            self.models.pop(next(iter(self.models)))
        self.models[digest(change.candidate)] = desired
        return change

    def apply(self, change: Change) -> Checkpoint:
        checkpoint = super().apply(change)
        known = self.models.get(digest(change.candidate))
        self.state.keep(MODEL_FILE, {"sha256": digest(change.candidate),
                                     "model": msgspec.to_builtins(known) if known is not None else None})
        return checkpoint

    def model_of(self, text: str) -> model.Desired | None:
        """The model ``text`` was rendered from: one this process rendered, or the one
        kept for the file in place if rendering it now gives ``text`` again (same
        templates and options).  None if unknown."""
        key = digest(text)
        if key in self.models:
            return self.models[key]
        kept = read_json(self.state.directory / MODEL_FILE)
        if not kept or kept.get("sha256") != key or kept.get("model") is None:
            return None
        try:
            desired = msgspec.convert(kept["model"], model.Desired)
            same = self.render(desired) == text
        except (msgspec.ValidationError, LbctlError):
            return None
        if same:
            self.models[key] = desired
        return desired if same else None

    def checked_already(self, change: Change) -> bool:
        """Whether ``change.candidate`` differs from a text that passed ``apache2 -t`` only
        in its pools' members: ``BalancerMember`` lines of values lbctl validated (an IP
        address, a port, a route, a load factor of 1 to 100, status flags), as
        HAProxy's check skips ``haproxy -c`` for server values (docs/apache.md#checking)."""
        if self.checked is None or change.live != self.checked:
            return False
        before, after = self.model_of(change.live), self.model_of(change.candidate)
        return before is not None and after is not None and runtime.beyond_members(before, after) is None

    # -- RuntimeChanges ----------------------------------------------------------------

    def runtime(self, change: Change) -> bool:
        """Make a members-only change through balancer-manager and read it back.

        False (and a log line) when it needs a graceful, or balancer-manager fails or
        disagrees: the caller then restarts gracefully, which also undoes a partial change.
        """
        if (change.live, change.candidate) == self.refused or change.live is None:
            return False
        self.refused = (change.live, change.candidate)
        if not self.settings.options.runtime_api:
            return False
        if self.make(change.live, change.candidate):
            return False
        self.refused = None
        return True

    def make(self, live: str, candidate: str) -> str | None:
        """Make the running balancers go from serving ``live`` to ``candidate``; why
        not (nothing, or part, was done: a graceful is needed; logged), or None."""
        before, after = self.model_of(live), self.model_of(candidate)
        if before is None or after is None:
            return self.graceful_needed("the model of the file in place is not known")
        if before == after:
            return self.graceful_needed("the file changes but not the model (templates or options)")
        why = runtime.beyond_members(before, after)
        if why:
            return self.graceful_needed(why)
        hosts = self.managers(live)
        if not hosts:
            return self.graceful_needed("no VirtualHost serves a balancer-manager")
        try:
            plans = []
            for host, manager in hosts:
                ops, why = runtime.planned(before, after, manager.current(), host.balancers,
                                           adds=self.settings.options.growth > 0)
                if ops is None:
                    return self.graceful_needed(f"{host.describe()}: {why}")
                plans.append((manager, ops))
            for manager, ops in plans:
                if ops:
                    manager.apply(ops)
        except NoSpareSlot as exc:
            return self.graceful_needed(str(exc))  # one renders fresh slots
        except CommandError as exc:
            log.warning("%s: %s; restarting gracefully instead", self.name, exc)
            return str(exc)
        return None

    def graceful_needed(self, why: str) -> str:
        log.debug("%s: %s: a graceful restart makes the change", self.name, why)
        return why

    def undo_runtime(self, change: Change) -> None:
        """Back through balancer-manager, else by a graceful restart on the file in place
        (which is ``change.live``: the runtime change was not written)."""
        why = self.make(change.candidate, change.live or "")
        if why is None:
            return
        log.warning("%s: undoing through balancer-manager failed (%s); restarting gracefully", self.name, why)
        if self.live_text() != change.live:
            raise RollbackError(f"{self.name}: cannot undo the runtime change: {self.path} is not its previous file")
        try:
            self.graceful()
        except ReloadError as exc:
            raise RollbackError(str(exc)) from None

    def runtime_differences(self) -> list[tuple[Manager, list[worker_drift.Difference]]]:
        """Per VirtualHost's balancer-manager, where its balancers differ from the file.

        :raises CommandError: a balancer-manager does not answer."""
        text = self.running_text()
        return [(manager, worker_drift.compare(text, manager.read(), host.balancers, host.describe()))
                for host, manager in self.managers(text)] if text is not None else []

    def runtime_drift(self) -> list[str]:
        try:
            found = [d for _, each in self.runtime_differences() for d in each]
        except CommandError as exc:
            self.runtime_drifted = False
            return [f"cannot compare the running balancers with {self.path}: {exc}"]
        self.runtime_drifted = bool(found)
        return worker_drift.report(str(self.path), found)

    def repair_runtime(self) -> str | None:
        """Through balancer-manager when the file's workers all run (read back: nothing
        may differ after), else by a graceful restart."""
        try:
            found = [(m, each) for m, each in self.runtime_differences() if each]
        except CommandError:
            return None  # drift says why
        if not found:
            return None
        total = sum(len(each) for _, each in found)
        count = f"{total} worker{'s' if total > 1 else ''}"
        repairs = [(m, worker_drift.repairs(each)) for m, each in found]
        if self.settings.options.runtime_api and all(ops is not None for _, ops in repairs):
            try:
                for manager, ops in repairs:
                    manager.apply(ops)
                if not any(each for _, each in self.runtime_differences()):
                    return f"put back {count} that differed from {self.path} through balancer-manager"
            except CommandError as exc:
                log.warning("%s: balancer-manager failed (%s); restarting gracefully instead", self.name, exc)
        self.graceful()
        return f"restarted apache gracefully to put back {count} that differed from {self.path}"


def worker_live(w) -> dict:
    """A balancer-manager worker (``balancers.Worker``) as the page shows it: its status
    words (``Init Ok``, ``Init Drn``, ``Init HcFl``) as up, down, maint or drain."""
    words = set(w.status.split())
    live = ("maint" if words & {"Dis", "Stop"} else "down" if words & {"Err", "HcFl"} else
            "drain" if "Drn" in words else "up" if "Ok" in words else "unknown")
    return {"live": live, "status": w.status, "check": w.status, "sessions": None}
