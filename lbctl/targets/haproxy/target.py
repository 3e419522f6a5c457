"""HAProxy in master-worker mode: check with ``haproxy -c``, keep server states
across the reload, reload through the master CLI and confirm it in ``show proc``
(docs/upstream.md#haproxy).  Member changes that only touch server lines go through
the Runtime API on the stats socket instead, checked by reading the state back:
members are servers named after them, added and deleted as dynamic servers, or
(``slots``) fill and free spare slots."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from lbctl import drift, guard, model
from lbctl.errors import CommandError, LbctlError, ReloadError, RollbackError, VerifyError
from lbctl.targets import files, procfs
from lbctl.targets.base import Change, RuntimeChanges
from lbctl.targets.filetarget import FileTarget
from lbctl.targets.haproxy import server_drift, slots, state_file
from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.targets.haproxy.ctl import (MasterCLI, ProcInfo, parse_servers_state, set_drain_map, show_servers_state,
                                       show_stat, socket_command)

log = logging.getLogger("lbctl.haproxy")


class HAProxyTarget(FileTarget, RuntimeChanges):
    kind = "haproxy"

    refused: tuple | None = None  # the last change the Runtime API could not make
    layout: tuple | None = None  # (a candidate, its slot layout) for the next plan
    served_kept: tuple = ()  # (text, what it serves) of the last live text and candidate, for the next guard check
    checked: str | None = None  # the last text that passed ``check``
    last: tuple | None = None  # (a model, its render) for the next plan (servers named after members)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.backends: dict = {}  # rendered backends, reused for pools that did not change
        self.write_delay = self.settings.write_delay_ms / 1000
        # Deleted from the file, but HAProxy refused ``del server`` while connections were
        # attached: in maintenance, deleted again on later changes, gone at the next reload.
        self.leftovers: set[tuple[str, str]] = set()

    @property
    def dynamic(self) -> bool:
        """Servers named after members come and go as dynamic servers (``add/del server``);
        with slots, only slots are filled and freed."""
        return not self.settings.slots

    @property
    def master(self) -> MasterCLI:
        return MasterCLI(self.settings.master_socket, self.settings.master_log)

    def endpoints(self) -> str:
        return f", master CLI {self.settings.master_socket}, stats socket {self.settings.options.stats_socket}"

    def plan(self, desired: model.Desired) -> Change:
        if not self.settings.slots:
            live = self.running_text()
            last, self.last = self.last, None
            text = None
            if last is not None and live is not None and (last[1] is live or last[1] == live):
                text = splice(self.render, last[0], live, desired)
            text = text if text is not None else self.render(desired, cache=self.backends)
            self.last = (desired, text)  # valid while what runs is this candidate
            return Change(self.name, live, text)
        live = self.running_text()
        previous = self.layout[1] if self.layout is not None and self.layout[0] == live else None
        desired, layout = slots.assign(desired, live, self.settings.slots, previous)
        change = Change(self.name, live, self.render(desired, cache=self.backends))
        self.layout = (change.candidate, layout)  # valid while the file is this candidate
        return change

    def served(self, text: str | None) -> guard.Served:
        return haproxy_cfg.served(text)

    def served_change(self, change: Change) -> tuple[guard.Served, guard.Served]:
        """Without parsing the whole file on the Runtime API path: the live side is the
        last candidate's (kept while the file is that text), the candidate's is worked
        out from the changed lines."""
        known = [served for text, served in self.served_kept if text == change.live]  # a rollback: the live one
        before = known[0] if known else self.served(change.live)
        after = haproxy_cfg.served_after(change.live, before, change.candidate)
        self.served_kept = ((change.live, before), (change.candidate, after))
        return before, after

    def runtime(self, change: Change) -> bool:
        """Make a server-lines-only change through the Runtime API and read it back.

        False (and a log line) when the change needs a reload or the socket fails
        or disagrees: the caller then reloads, which also repairs a partial change.
        """
        if (change.live, change.candidate) == self.refused:
            return False  # tried already for this change (deploy, then reload)
        self.refused = (change.live, change.candidate)
        changes = (haproxy_cfg.runtime_changes(change.live, change.candidate, self.dynamic)
                   if self.settings.runtime_api else None)
        if not changes:
            return False
        try:
            wrong = self.send(changes)
        except CommandError as exc:
            log.warning("%s: runtime API failed (%s); reloading instead", self.name, exc)
            return False
        if wrong:
            log.warning("%s: runtime API read-back disagrees for %s; reloading instead", self.name, wrong)
            return False
        self.refused = None
        return True

    def undo_runtime(self, change: Change) -> None:
        changes = haproxy_cfg.runtime_changes(change.candidate, change.live or "", self.dynamic)
        if changes is None:
            raise RollbackError(f"{self.name}: the runtime change cannot be reversed through the runtime API")
        try:
            wrong = self.send(changes)
        except CommandError as exc:
            raise RollbackError(str(exc)) from None
        if wrong:
            raise RollbackError(f"{self.name}: runtime API read-back disagrees for {wrong}")

    def send(self, changes: list[haproxy_cfg.ServerChange]) -> str:
        """Send ``changes`` in one batch and read them back: "" when every one took,
        else the servers that did not.  :raises CommandError: the socket failed."""
        stats = self.settings.options.stats_socket
        touched = {(c.backend, c.server) for c in changes}
        # A leftover that comes back is still there, in maintenance: fill it again.  Delete the others again.
        changes = [replace(c, action="set", readdress=True) if c.action == "add" and (c.backend, c.server)
                   in self.leftovers else c for c in changes]
        retry = [f"del server {backend}/{server}" for backend, server in sorted(self.leftovers - touched)]
        socket_command(stats, ";".join(retry + [cmd for c in changes for cmd in haproxy_cfg.commands(c)]), timeout=5.0)
        rows = {}
        for backend in sorted({b for b, _ in touched | self.leftovers}):
            for row in parse_servers_state(socket_command(stats, f"show servers state {backend}", timeout=5.0)):
                rows[row.backend, row.name] = row
        deleted = {(c.backend, c.server) for c in changes if c.action == "del"}
        self.leftovers = {key for key in (self.leftovers - touched) | deleted if key in rows}
        return ", ".join(f"{c.backend}/{c.server}" for c in changes if not took(c, rows.get((c.backend, c.server))))

    def check(self, change: Change) -> None:
        """``haproxy -c`` on the candidate, unless it differs from a text that passed
        only in server values HAProxy accepts without looking anything up (an IP
        address, a port, a weight, ``disabled``): see docs/runtime-api.md."""
        if self.checked is not None and change.live == self.checked:
            found = haproxy_cfg.server_delta(change.live, change.candidate, self.dynamic)
            if found is not None and all(haproxy_cfg.valid(after, added=before is None)
                                         for before, after in found[0] if after is not None):
                self.checked = change.candidate
                return
        drain_map = self.settings.options.drain_map
        if drain_map and not os.path.exists(drain_map):  # HAProxy refuses a map file that is not there
            files.atomic_write(Path(drain_map), "")
        self.check_beside(change)
        self.checked = change.candidate

    def keep_alive(self, allowed: bool) -> bool:
        """Through ``drain_map`` (rendered into every HTTP frontend), if set."""
        drain_map = self.settings.options.drain_map
        if drain_map:
            set_drain_map(self.settings.options.stats_socket, drain_map, closing=not allowed)
        return bool(drain_map)

    def reload(self, change: Change) -> None:
        if self.runtime(change):
            return
        self.save_server_states(change)
        self.master.reload(timeout=self.settings.reload_timeout_ms / 1000)
        self.leftovers.clear()  # the new workers have the file's servers only

    def runtime_differences(self) -> list[server_drift.Difference]:
        """The running servers against the file in place (docs/configuration.md#drift-what-runs-versus-the-file).

        :raises CommandError: the stats socket does not answer.
        """
        text = self.running_text()
        if text is None:
            return []
        rows = show_servers_state(self.settings.options.stats_socket, timeout=5.0)
        return server_drift.compare(haproxy_cfg.servers(text), rows)

    def runtime_drift(self) -> list[str]:
        try:
            found = self.runtime_differences()
        except CommandError as exc:
            self.runtime_drifted = False
            return [f"cannot compare the running servers with {self.path}: {exc}"]
        self.runtime_drifted = bool(found)
        return server_drift.report(self.kind, str(self.path), found)

    def repair_runtime(self) -> str | None:
        """Through the Runtime API when only members differ (read back: nothing may
        differ after), else by a reload that does not carry the differing servers' states over."""
        try:
            found = self.runtime_differences()
        except CommandError:
            return None  # drift says why; a reload would not read the socket either
        if not found:
            return None
        count = f"{len(found)} server{'s' if len(found) > 1 else ''}"
        changes = server_drift.repairs(found, self.dynamic) if self.settings.runtime_api else None
        if changes is not None:
            try:
                socket_command(self.settings.options.stats_socket,
                               ";".join(cmd for c in changes for cmd in haproxy_cfg.commands(c)), timeout=5.0)
                if not self.runtime_differences():
                    return f"put back {count} that differed from {self.path} through the runtime API"
                log.warning("%s: runtime API read-back still differs from %s; reloading instead", self.name, self.path)
            except CommandError as exc:
                log.warning("%s: runtime API failed (%s); reloading instead", self.name, exc)
        live = self.live_text() or ""
        self.save_server_states(Change(self.name, live, live), drop={(d.backend, d.server) for d in found})
        self.master.reload(timeout=self.settings.reload_timeout_ms / 1000)
        self.leftovers.clear()
        return f"reloaded {self.path} to put back {count} that differed from it"

    def save_server_states(self, change: Change, drop: set = frozenset()) -> None:
        """Dump the running servers' states for the new workers, minus every server
        whose line changes (and those in ``drop``): for those the new config must win
        (docs/upstream.md#haproxy-server-state)."""
        opts = self.settings.options
        try:
            text = socket_command(opts.stats_socket, "show servers state", timeout=5.0)
        except CommandError:
            return  # no stats socket: the new workers start from the config alone
        if not text.startswith("1\n"):
            return
        try:
            files.atomic_write(opts.state_file, state_file.carried(text, change, self.leftovers | drop))
        except LbctlError as exc:
            raise ReloadError(f"{self.name}: cannot save server states: {exc}") from None

    def verify_process(self) -> None:
        try:
            proc = self.master.show_proc()
        except CommandError as exc:
            raise VerifyError(f"{self.name}: haproxy master does not answer: {exc}") from None
        if not proc.workers:
            raise VerifyError(f"{self.name}: haproxy has no worker")

    def reach(self, timeout: float = 2.0) -> ProcInfo | None:
        """``show proc`` from the master CLI; None if haproxy is not running.

        :raises CommandError: haproxy runs (its stats socket answers, or a process
            runs this config) but the master CLI does not answer on ``master_socket``.
        """
        try:
            return self.master.show_proc(timeout=timeout)
        except CommandError as exc:
            evidence = self.evidence()
            if evidence is None:
                return None
            raise CommandError(f"{self.name}: haproxy is running ({evidence}) but its master CLI does not answer on "
                               f"master_socket {self.settings.master_socket} ({exc}); set master_socket in lbctl.yml "
                               "to the path haproxy was started with (-S)") from None

    def evidence(self) -> str | None:
        """How we know haproxy runs although its master CLI did not answer; None if it does not."""
        stats = self.settings.options.stats_socket
        try:
            pid = re.search(r"^Pid: (\d+)", socket_command(stats, "show info", timeout=2.0), re.M)
            return f"its stats socket {stats} answers" + (f", pid {pid.group(1)}" if pid else "")
        except CommandError:
            pids = procfs.running_with("haproxy", self.path)
        return f"pid {', '.join(map(str, pids))} runs haproxy -f {self.path}" if pids else None

    def process(self) -> drift.Process | None:
        proc = self.reach()
        if proc is None or not proc.workers:
            return None
        starts = [t for t in map(procfs.started, proc.worker_pids) if t is not None]
        return drift.Process((proc.master_pid, proc.reloads, *sorted(proc.worker_pids)), max(starts, default=None))

    def process_status(self) -> dict:
        try:
            proc = self.reach()
        except CommandError as exc:
            return {"running": True, "reachable": False, "summary": f"unreachable: {exc}"}
        if proc is None:
            return {"running": False}
        return {"running": True, "master_pid": proc.master_pid, "reloads": proc.reloads, "failed": proc.failed,
                "workers": list(proc.worker_pids), "old_workers": [p.pid for p in proc.old_workers]}

    def live_members(self, pools: Iterable[str] | None = None) -> dict[str, Mapping[str, dict]]:
        pools = None if pools is None else tuple(pools)
        stats = show_stat(self.settings.options.stats_socket, pools)
        if self.settings.slots:  # a member in a runtime slot is served by server slotN: found by its address
            for pool, seen in slots.in_use(self.live_text() or "", pools).items():
                if pool in stats:
                    stats[pool].aliases.update({address: slot for slot, address in seen["used"].items()})
        return stats

    def status(self) -> dict:
        out = super().status()
        if self.settings.slots:
            out["slots"] = slots.in_use(self.live_text() or "")
        return out


SPLICE_MAX = 64  # changed pools beyond which a whole render is as cheap


def splice(render, before: model.Desired, text: str, desired: model.Desired) -> str | None:
    """``text`` (the render of ``before``) with the backends of the pools that are
    not the very same objects in ``desired`` rendered again and put in place; None
    when that is not the whole difference (listeners, the pool list, a backend not
    found as rendered): then render everything.  A change costs its pools."""
    if desired.listeners != before.listeners or len(desired.pools) != len(before.pools):
        return None
    changed = [(new, old) for new, old in zip(desired.pools, before.pools) if new is not old]
    if len(changed) > SPLICE_MAX or any(new.name != old.name for new, old in changed):
        return None
    pieces, pos = [], 0
    for new, old in changed:
        users = tuple(lst for lst in desired.listeners if new.name in model.listener_pools(lst))
        old_text, new_text = (backend_of(render(model.Desired(users, (pool,))), pool.name) for pool in (old, new))
        start = text.find(f"\nbackend {old.name}\n", pos) if old_text and new_text else -1
        if start < 0 or not text.startswith(old_text, start):
            return None
        pieces += [text[pos:start], new_text]
        pos = start + len(old_text)
    return "".join(pieces + [text[pos:]])


def backend_of(text: str, name: str) -> str:
    """A one-pool render's backend (from its ``backend`` line on), "" if none."""
    start = text.find(f"\nbackend {name}\n")
    return text[start:] if start >= 0 else ""


def took(change: haproxy_cfg.ServerChange, row) -> bool:
    """Whether ``show servers state`` shows ``change`` in effect."""
    if change.action == "del":  # gone, or in maintenance while connections keep it (retried: ``leftovers``)
        return row is None or bool(row.admin_state & 0x01)
    if row is None:
        return False
    if change.state == "maint":
        return bool(row.admin_state & 0x01)
    return (not row.admin_state & 0x01 and row.uweight == change.weight
            and (row.addr, row.port) == (change.address, change.port))
