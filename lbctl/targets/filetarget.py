"""What HAProxy and nginx targets share: one config file, rendered, checked beside
the live one, backed up, swapped atomically, and a state dir per target.

Backups of the live file go to ``<state_dir>/<target>/backups/`` (the last N),
beside the target's ``TargetState``, outside every directory the load balancer reads.
Backups live there, outside every directory the load balancer reads.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

from lbctl import config as cfg
from lbctl import drift, model
from lbctl.errors import ApplyError, CommandError, ConfigError, LbctlError, RollbackError
from lbctl.targets import check as checks
from lbctl.targets import files, probes, procfs, start
from lbctl.targets.base import Change, Checkpoint, Restorable, RuntimeChanges
from lbctl.targets.state import TargetState

Renderer = Callable[..., str]  # (desired, **options such as cache=) -> text


class FileTarget(Restorable):
    """A load balancer configured by one file that lbctl owns."""

    def __init__(self, settings: cfg.Target, render: Renderer) -> None:
        self.settings = settings
        self.name = settings.name
        self.path = settings.config
        self.location = str(self.path)
        self.shared = settings.shared
        self.render = render
        self.backups = files.BackupStore(settings.state_dir / "backups", settings.keep_backups)
        self.state = TargetState(settings.state_dir, settings.name, settings.lock_timeout_ms / 1000)
        self._live: tuple | None = None  # ((inode, size, mtime), text) of the file last read

    # -- the contract ----------------------------------------------------------------

    def plan(self, desired: model.Desired) -> Change:
        return self.plan_text(self.render(desired))

    def plan_text(self, candidate: str) -> Change:
        return Change(self.name, self.running_text(), candidate)

    def apply(self, change: Change) -> Checkpoint:
        known = self._live if self._live is not None and self._live[1] == change.live else None
        try:
            backup = self.backups.save(self.path, known) if self.path.exists() else None
            written = files.atomic_write(self.path, change.candidate)
        except ApplyError as exc:
            raise ApplyError(f"{self.name}: {exc}") from None
        with contextlib.suppress(OSError):  # the next plan compares with it: no need to read it back
            self._live = (files.stat_key(os.stat(written)), change.candidate)
        return Checkpoint(self.name, backup.id if backup else None, change)

    def rollback(self, checkpoint: Checkpoint) -> Change:
        try:
            if checkpoint.backup_id is None:
                self.path.unlink(missing_ok=True)
            else:
                self.backups.restore(checkpoint.backup_id, self.path)
        except (OSError, ApplyError, ConfigError) as exc:
            raise RollbackError(f"{self.name}: could not restore {self.path}: {exc}") from None
        failed = checkpoint.change
        return Change(self.name, failed.candidate, failed.live or "")

    def backup(self, backup_id: str | None) -> files.Backup:
        backup = self.backups.get(backup_id) if backup_id else self.backups.latest(self.path)
        if backup is None:
            raise ConfigError(f"{self.name}: no backups in {self.backups.directory}")
        return backup

    def start_hint(self) -> str:
        return start.hint(self.settings)

    def resume(self, change: Change) -> None:
        """An interrupted apply's process runs the newest backup; otherwise lbctl does
        not know what it runs, and a full reload (no server state kept) is the safe way."""
        previous = self.backups.latest(self.path) if self.state.pending() else None
        self.reload(Change(self.name, previous.read_bytes().decode() if previous else None, change.candidate))

    def verify(self, change: Change) -> None:
        self.verify_process()
        probes.wait_healthy(self.settings.probes)
        self.note_loaded()

    def note_loaded(self) -> None:
        try:
            process = self.process()
        except LbctlError:
            return
        if process is not None:
            self.state.keep("loaded.json", drift.record(procfs.signature(self.path), process))

    def running(self) -> bool:
        return self.process() is not None

    def stale(self) -> str | None:
        process = self.process()
        if process is None:
            return None
        if self.state.pending():
            return "an interrupted apply had written"
        if self.ahead(process):
            return f"the running {self.kind} had not loaded"
        return None

    def ahead(self, process: drift.Process) -> bool | None:
        return drift.behind(self.state.loaded(), process, procfs.signature(self.path), procfs.modified(self.path))

    def drift(self) -> list[str]:
        process = self.process()
        ahead = self.ahead(process) if process is not None else None
        # A file ahead of the process: its reload repairs the servers too.
        runtime = []
        if isinstance(self, RuntimeChanges) and process is not None and not ahead:
            runtime = self.runtime_drift()
        return drift.report(self.kind, str(self.path), ahead, self.state.last(), files.sha256_file(self.path)) + runtime

    # -- what each kind provides ----------------------------------------------------

    def verify_process(self) -> None:
        """:raises VerifyError: the process is not running the config."""

    def process(self) -> drift.Process | None:
        """The running load balancer, None if it is not running.

        :raises CommandError: it runs, but not where lbctl.yml says to reach it.
        """
        raise NotImplementedError

    def process_status(self) -> dict:
        raise NotImplementedError

    def refuse_unnamed(self, programs: tuple[str, ...], pid_file: str) -> None:
        """For ``process`` when ``pid_file`` names no running load balancer.

        :raises CommandError: one of ``programs`` runs on this file all the same.
        """
        config = self.settings.main_config or self.path
        pids = [pid for program in programs for pid in procfs.running_with(program, config)]
        if pids:
            raise CommandError(f"{self.name}: {programs[0]} is running (pid {', '.join(map(str, pids))} on {config}) "
                               f"but pid_file {pid_file} does not name it; set pid_file in lbctl.yml to the file "
                               f"that {programs[0]} writes")

    # -- shared plumbing ----------------------------------------------------------------

    def running_text(self) -> str | None:
        """What the process runs: the file, or the text of runtime changes not written yet."""
        pending = self.unwritten if isinstance(self, RuntimeChanges) else None
        return pending.candidate if pending is not None else self.live_text()

    def live_text(self) -> str | None:
        """The file in place; read again only when its inode, size or mtime changed
        (``lbctl watch`` compares a file of megabytes with the render every round)."""
        try:
            key = files.stat_key(os.stat(self.path))
            if self._live is not None and self._live[0] == key:
                return self._live[1]
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ApplyError(f"{self.name}: cannot read {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        self._live = (key, text)
        return text

    def check_beside(self, change: Change) -> None:
        """The kind's own check (``binary.check``) of the candidate, written beside the live file.

        :raises ValidationError: rejected.  :raises ApplyError, CommandError: it could not run.
        """
        staged = self.staged(change)
        try:
            checks.check(self.kind, staged, self.settings.binary, self.settings.check_timeout_ms / 1000)
        finally:
            staged.unlink(missing_ok=True)

    def staged(self, change: Change) -> Path:
        """Write the candidate beside the live file under a hidden temp name.

        :raises ApplyError: the config directory cannot be written (nothing changed).
        """
        tmp = self.path.with_name(f".{self.path.name}.check{files.TEMP_SUFFIX}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            files.clean_stale_temps(self.path.parent)
            tmp.write_text(change.candidate)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ApplyError(f"{self.name}: cannot write the candidate beside {self.path} to check it: "
                             f"{exc.strerror or exc}") from None
        return tmp

    def status(self) -> dict:
        return {
            "target": self.name,
            "kind": self.kind,
            "config": str(self.path),
            "sha256": files.sha256_file(self.path),
            "last_apply": self.state.last(),
            "backups": [b.id for b in self.backups.list(self.path)],
            "process": self.process_status(),
        }

