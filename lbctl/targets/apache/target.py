"""Apache httpd: check the file (or the whole staged Debian tree) with ``apache2 -t``, restart
gracefully with SIGUSR1 and confirm the new generation (docs/apache.md).  Member changes
go through balancer-manager instead when they can (live.py, docs/apache.md#runtime-changes)."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from lbctl import drift, guard
from lbctl.errors import ApplyError, CommandError, VerifyError
from lbctl.targets import procfs
from lbctl.targets.apache import binary
from lbctl.targets.apache import ctl as apache_ctl
from lbctl.targets.apache.live import BalancerManagerChanges
from lbctl.targets.base import Change
from lbctl.targets.filetarget import FileTarget
from lbctl.targets.stage import stage_tree


class ApacheTarget(BalancerManagerChanges, FileTarget):
    kind = "apache"
    reloaded = "restarted gracefully"

    def served(self, text: str | None) -> guard.Served:
        return served(text)

    def check(self, change: Change) -> None:
        if self.checked_already(change):  # only members differ from a text apache2 -t passed (live.py)
            self.checked = change.candidate
            return
        timeout = self.settings.check_timeout_ms / 1000
        self.make_run_dir()
        if self.settings.main_config is None:
            self.check_beside(change)
        else:
            with tempfile.TemporaryDirectory(prefix="lbctl-apache-") as tmp:
                main = stage_tree(self.settings.main_config, self.path, change.candidate, Path(tmp) / "conf")
                binary.check(main, self.settings.binary, timeout, main.parent, self.settings.main_config.parent)
        if self.running():
            apache_ctl.check_binds(change.candidate, change.live)
        self.checked = change.candidate

    def make_run_dir(self) -> None:
        """``run_dir`` (DefaultRuntimeDir) is lbctl's in the main layout: Apache refuses a missing one."""
        if self.settings.main_config is not None:
            return
        try:
            Path(self.settings.options.run_dir).mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            raise ApplyError(f"{self.name}: cannot create run_dir {self.settings.options.run_dir}: "
                             f"{exc.strerror}") from None

    def endpoints(self) -> str:
        return f", pid file {self.settings.options.pid_file}"

    def reload(self, change: Change) -> None:
        if not self.runtime(change):
            self.graceful()

    def graceful(self) -> None:
        opts = self.settings.options
        apache_ctl.graceful(opts.pid_file, opts.manager, opts.error_log, timeout=self.settings.reload_timeout_ms / 1000)

    def verify_process(self) -> None:
        if not self.running():
            raise VerifyError(f"{self.name}: apache is not running (pid file {self.settings.options.pid_file})")

    def process(self) -> drift.Process | None:
        """Known by its parent and configuration generation, which only a restart changes (its
        children come and go with the load); by its children when server-status does not answer."""
        pid_file = self.settings.options.pid_file
        gen = apache_ctl.generation(pid_file, self.settings.options.manager)
        if gen is None:
            self.refuse_unnamed(("apache", "httpd"), pid_file)
            return None
        starts = [t for t in map(procfs.started, gen.children) if t is not None]
        if gen.config_generation is None or gen.uptime is None:
            return drift.Process((gen.parent_pid, *sorted(gen.children)), max(starts, default=None))
        # When it loaded the file: at its last restart, which server-status gives in whole seconds,
        # and before its first child of this generation started (old children still finishing
        # make it earlier: the safe side, a file then looks ahead and the next apply reloads).
        restarted = time.clock_gettime(time.CLOCK_BOOTTIME) - gen.uptime  # the clock of procfs.started
        return drift.Process((gen.parent_pid, "generation", gen.config_generation), min([restarted, *starts]))

    def live_members(self, pools=None) -> dict[str, dict[str, dict]]:
        """balancer-manager's workers by ``host:port`` (the page finds members by address), of
        ``pools`` only if given (one page read has them all).
        :raises CommandError: balancer-manager does not answer."""
        wanted = None if pools is None else set(pools)
        return {name: {f"{w.host}:{w.port}": worker_live(w) for w in b.workers}
                for name, b in self.manager.read().items() if wanted is None or name in wanted}

    def process_status(self) -> dict:
        opts = self.settings.options
        try:
            gen = self.process() and apache_ctl.generation(opts.pid_file, opts.manager)
        except CommandError as exc:
            return {"running": True, "reachable": False, "summary": f"unreachable: {exc}"}
        if not gen:
            return {"running": False}
        # master_pid and workers as the other kinds say (Apache's parent and children), for scripts
        return {"running": True, "master_pid": gen.parent_pid, "workers": list(gen.children),
                "config_generation": gen.config_generation, "manager": opts.manager}


BALANCER = re.compile(r'<Proxy\s+"balancer://([^"]+)">')
MEMBER = re.compile(r'BalancerMember\s+"\S+"\s+route=(\S+)(.*)')
LISTENER = re.compile(r"#\s*listener\s+([^,\s]+)")


def served(text: str | None) -> guard.Served:
    """What an httpd.conf lbctl rendered serves, for the removal guard: its listeners (the
    ``# listener NAME`` comments) and per balancer the members not disabled (``+D``),
    known by their route (the member's name).  Pure."""
    listeners, pools, balancer = set(), {}, None
    for line in (text or "").splitlines():
        line = line.strip()
        if balancer is not None and (m := MEMBER.match(line)):
            if "status=+D" not in m.group(2).split():
                pools[balancer].add(m.group(1))
        elif line.startswith("</Proxy>"):
            balancer = None
        elif m := BALANCER.match(line):
            balancer = m.group(1)
            pools[balancer] = set()
        elif m := LISTENER.match(line):
            listeners.add(m.group(1))
    return guard.Served(frozenset(listeners), {name: frozenset(m) for name, m in pools.items()})


def worker_live(w) -> dict:
    """A balancer-manager worker (``balancers.Worker``) as the page shows it: its status
    words (``Init Ok``, ``Init Drn``, ``Init HcFl``) as up, down, maint or drain."""
    words = set(w.status.split())
    live = ("maint" if words & {"Dis", "Stop"} else "down" if words & {"Err", "HcFl"} else
            "drain" if "Drn" in words else "up" if "Ok" in words else "unknown")
    return {"live": live, "status": w.status, "check": w.status, "sessions": None}
