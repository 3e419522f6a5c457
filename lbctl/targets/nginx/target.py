"""nginx: check the whole configuration tree with ``nginx -t`` on a staged copy,
reload with HUP and confirm it by worker generations and the error log
(docs/upstream.md#nginx-reload)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from lbctl import drift, guard
from lbctl.errors import ApplyError, CommandError, VerifyError
from lbctl.targets import procfs
from lbctl.targets.base import Change
from lbctl.targets.filetarget import FileTarget
from lbctl.targets.nginx import binary
from lbctl.targets.nginx import ctl as nginx_ctl
from lbctl.targets.stage import stage_tree


class NginxTarget(FileTarget):
    kind = "nginx"
    live_note = "not reported by nginx open source (no upstream state API); lbctl's probes cover the listeners"

    def served(self, text: str | None) -> guard.Served:
        return served(text)

    def check(self, change: Change) -> None:
        timeout = self.settings.check_timeout_ms / 1000
        self.make_temp_dir()
        if self.settings.main_config is None:
            self.check_beside(change)
            return
        with tempfile.TemporaryDirectory(prefix="lbctl-nginx-") as tmp:
            main = stage_tree(self.settings.main_config, self.path, change.candidate, Path(tmp) / "conf")
            binary.check(main, self.settings.binary, timeout)

    def make_temp_dir(self) -> None:
        """``temp_dir`` is lbctl's: create it (nginx creates only the last level of a temp path)."""
        temp_dir = self.settings.options.temp_dir
        if temp_dir:
            try:
                Path(temp_dir).mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                raise ApplyError(f"{self.name}: cannot create temp_dir {temp_dir}: {exc.strerror}") from None

    def endpoints(self) -> str:
        return f", pid file {self.settings.options.pid_file}"

    def reload(self, change: Change) -> None:
        opts = self.settings.options
        nginx_ctl.reload(opts.pid_file, opts.error_log, timeout=self.settings.reload_timeout_ms / 1000)

    def verify_process(self) -> None:
        if not self.running():
            raise VerifyError(f"{self.name}: nginx is not running (pid file {self.settings.options.pid_file})")

    def process(self) -> drift.Process | None:
        pid_file = self.settings.options.pid_file
        gen = nginx_ctl.generation(pid_file)
        if gen is None:
            self.refuse_unnamed(("nginx",), pid_file)
            return None
        starts = [t for t in map(procfs.started, gen.workers) if t is not None]
        return drift.Process((gen.master_pid, *sorted(gen.workers)), max(starts, default=None))

    def process_status(self) -> dict:
        try:
            gen = self.process() and nginx_ctl.generation(self.settings.options.pid_file)
        except CommandError as exc:
            return {"running": True, "reachable": False, "summary": f"unreachable: {exc}"}
        if not gen:
            return {"running": False}
        return {"running": True, "master_pid": gen.master_pid, "workers": list(gen.workers),
                "shutting_down": list(gen.shutting_down)}


UPSTREAM = re.compile(r"upstream\s+(\S+)\s*\{")
UPSTREAM_SERVER = re.compile(r"server\s+(\S+)([^;]*);\s*(?:#\s*(\S+))?")
LISTENER = re.compile(r"#\s*listener\s+([^,\s]+)")
LISTEN = re.compile(r"listen\s+([^\s;]+)")
SERVICE_ROUTE = re.compile(r"#\s*route\s+\S+ of service \S+: pool (\S+)$")  # a route a service declared


def served(text: str | None) -> guard.Served:
    """What an nginx.conf lbctl rendered serves, for the removal guard: its listeners
    (the ``# listener NAME`` comments, else the ``listen`` addresses) and per upstream
    the servers not marked ``down``, known by the member name in their comment, and the
    pools of the ``# route ... of service ...`` comments (``model.service_pools``).  Pure."""
    listeners, listens, pools, upstream, routed = set(), set(), {}, None, set()
    for line in (text or "").splitlines():
        line = line.strip()
        if upstream is not None:
            server = UPSTREAM_SERVER.match(line)
            if line.startswith("}"):
                upstream = None
            elif server and "down" not in server.group(2).split():
                pools[upstream].add(server.group(3) or server.group(1))
        elif m := UPSTREAM.match(line):
            upstream = m.group(1)
            pools[upstream] = set()
        elif m := LISTENER.match(line):
            listeners.add(m.group(1))
        elif m := SERVICE_ROUTE.match(line):
            routed.add(m.group(1))
        elif m := LISTEN.match(line):
            listens.add(m.group(1))
    return guard.Served(frozenset(listeners or listens), {name: frozenset(m) for name, m in pools.items()},
                        frozenset(routed))
