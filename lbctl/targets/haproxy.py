"""HAProxy in master-worker mode: check with ``haproxy -c``, keep server states
across the reload, reload through the master CLI and confirm it in ``show proc``
(specs/reload.md §1)."""

from __future__ import annotations

import re

from lbctl.errors import CommandError, LbctlError, ReloadError, VerifyError
from lbctl.targets import check, files
from lbctl.targets.base import Change
from lbctl.targets.filetarget import FileTarget
from lbctl.targets.haproxy_ctl import MasterCLI, socket_command

SECTION = re.compile(r"^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|program|cache|mailers|ring|http-errors)\b\s*(\S*)")
SERVER = re.compile(r"^\s+server\s+(\S+)\s")


class HAProxyTarget(FileTarget):
    kind = "haproxy"

    @property
    def master(self) -> MasterCLI:
        return MasterCLI(self.settings.master_socket, self.settings.master_log)

    def check(self, change: Change) -> None:
        staged = self.staged(change)
        try:
            check.haproxy(staged, self.settings.binary, self.settings.check_timeout_ms / 1000)
        finally:
            staged.unlink(missing_ok=True)

    def reload(self, change: Change) -> None:
        self.save_server_states(change)
        self.master.reload(timeout=self.settings.reload_timeout_ms / 1000)

    def save_server_states(self, change: Change) -> None:
        """Dump the running servers' states for the new workers, minus every server
        whose line changes: for those the new config must win (reload.md §1.7)."""
        opts = self.settings.options
        try:
            text = socket_command(opts.stats_socket, "show servers state", timeout=5.0)
        except CommandError:
            return  # no stats socket: the new workers start from the config alone
        if not text.startswith("1\n"):
            return
        before, after = server_lines(change.live or ""), server_lines(change.candidate)
        keep = [line for line in text.splitlines()[2:] if unchanged(line, before, after)]
        header = text.splitlines()[:2]
        try:
            files.atomic_write(opts.state_file, "\n".join(header + keep) + "\n")
        except LbctlError as exc:
            raise ReloadError(f"{self.name}: cannot save server states: {exc}") from None

    def verify_process(self) -> None:
        try:
            proc = self.master.show_proc()
        except CommandError as exc:
            raise VerifyError(f"{self.name}: haproxy master does not answer: {exc}") from None
        if not proc.workers:
            raise VerifyError(f"{self.name}: haproxy has no worker")

    def running(self) -> bool:
        try:
            return bool(self.master.show_proc(timeout=2.0).workers)
        except CommandError:
            return False

    def process_status(self) -> dict:
        try:
            proc = self.master.show_proc(timeout=2.0)
        except CommandError as exc:
            return {"running": False, "reason": str(exc)}
        return {"running": True, "master_pid": proc.master_pid, "reloads": proc.reloads, "failed": proc.failed,
                "workers": list(proc.worker_pids), "old_workers": [p.pid for p in proc.old_workers]}


def server_lines(text: str) -> dict[tuple[str, str], str]:
    """``(backend, server) -> the server line`` for every server in a haproxy.cfg."""
    out, section = {}, ("", "")
    for line in text.splitlines():
        match = SECTION.match(line)
        if match:
            section = (match.group(1), match.group(2))
            continue
        server = SERVER.match(line)
        if server and section[0] in ("backend", "listen"):
            out[section[1], server.group(1)] = " ".join(line.split())
    return out


def unchanged(row: str, before: dict, after: dict) -> bool:
    """Keep a ``show servers state`` row only if its server's line is the same in both configs."""
    fields = row.split()
    if len(fields) < 4:
        return False
    key = (fields[1], fields[3])
    return key in after and before.get(key) == after[key]
