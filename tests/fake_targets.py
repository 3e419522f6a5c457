"""Targets held in memory that implement the Target contract (lbctl/targets/base.py)
and nothing else, with or without the optional capabilities: what ``deploy`` and
the controller may rely on, and no more.

A ``Memory`` target's configuration is one line per pool (``pool NAME member ...``);
its "process" runs the text last reloaded.  ``fail`` names the steps that fail
(check, apply, reload, verify, rollback, runtime, undo), each once; ``calls`` records every step.
Public attributes read from a target (by anyone) are collected in ``read``: the
tests compare them with the names the contract declares.
"""

from __future__ import annotations

from pathlib import Path

from lbctl import guard, model
from lbctl.errors import ApplyError, ConfigError, ReloadError, RollbackError, ValidationError, VerifyError
from lbctl.targets import files
from lbctl.targets.base import Change, Checkpoint, Restorable, RuntimeChanges, Target
from lbctl.targets.state import TargetState

CONTRACT = {n for n in dir(Target) if not n.startswith("_")} | set(Target.__annotations__)
FAILURES = {"check": ValidationError, "apply": ApplyError, "reload": ReloadError, "verify": VerifyError,
            "rollback": RollbackError, "undo": RollbackError}


def render(desired: model.Desired) -> str:
    return "".join(f"pool {p.name}{''.join(' ' + m.name for m in p.members)}\n" for p in desired.pools)


class Memory(Target):
    """Only the contract: no path, no settings, no capability."""

    kind = "memory"

    def __init__(self, directory: Path, name: str = "edge", up: bool = True) -> None:
        self._read: set[str] = set()
        self.name, self.location = name, f"memory:{name}"
        self.state = TargetState(directory / name, name, 0.2)
        self._file: str | None = None  # the configuration in place
        self._runs: str | None = None if not up else ""  # what the process runs (None: not running)
        self.fail: set[str] = set()
        self.calls: list[str] = []

    def __getattribute__(self, name: str):
        if not name.startswith("_"):
            object.__getattribute__(self, "_read").add(name)
        return object.__getattribute__(self, name)

    @property
    def read(self) -> set[str]:
        return self._read - {"read", "fail", "calls", "file", "runs", "step"}  # the tests' own

    @property
    def file(self) -> str | None:
        return self._file

    @property
    def runs(self) -> str | None:
        return self._runs

    def step(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            self.fail.discard(name)
            raise FAILURES.get(name, ApplyError)(f"{self.name}: {name} failed")

    def running(self) -> bool:
        return self._runs is not None

    def plan(self, desired: model.Desired) -> Change:
        return Change(self.name, self._file, render(desired))

    def served(self, text: str | None) -> guard.Served:
        pools = {line.split()[1]: frozenset(line.split()[2:]) for line in (text or "").splitlines()}
        return guard.Served(frozenset(), pools)

    def check(self, change: Change) -> None:
        self.step("check")

    def apply(self, change: Change) -> Checkpoint:
        self.step("apply")
        self._file = change.candidate
        return Checkpoint(self.name, None, change)

    def reload(self, change: Change) -> None:
        self.step("reload")
        self._runs = self._file

    def verify(self, change: Change) -> None:
        self.step("verify")
        if self._runs != change.candidate:
            raise VerifyError(f"{self.name}: runs {self._runs!r}, not {change.candidate!r}")

    def rollback(self, checkpoint: Checkpoint) -> Change:
        self.step("rollback")
        failed = checkpoint.change
        self._file = failed.live
        return Change(self.name, failed.candidate, failed.live or "")

    def status(self) -> dict:
        return {"target": self.name, "kind": self.kind, "config": self.location}


class MemoryRestorable(Memory, Restorable):
    """Also takes a configuration text (a backup); keeps no backups itself."""

    def plan_text(self, candidate: str) -> Change:
        return Change(self.name, self._file, candidate)

    def backup(self, backup_id: str | None) -> files.Backup:
        raise ConfigError(f"{self.name}: no backups in memory")


class MemoryRuntime(Memory, RuntimeChanges):
    """Also makes member changes to the running process without a reload."""

    def runtime(self, change: Change) -> bool:
        try:
            self.step("runtime")
        except ApplyError:
            return False
        self._runs = change.candidate
        return True

    def undo_runtime(self, change: Change) -> None:
        self.step("undo")
        self._runs = change.live

    def runtime_drift(self) -> list[str]:
        self.runtime_drifted = self._runs != self._file
        return ["the running pools differ from the file"] if self.runtime_drifted else []

    def repair_runtime(self) -> str | None:
        if self._runs == self._file:
            return None
        self._runs = self._file
        return "put back the running pools"
