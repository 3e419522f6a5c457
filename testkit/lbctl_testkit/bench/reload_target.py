"""One load balancer (HAProxy, nginx or Apache) under ``lbctl apply`` for the reload benchmark: its
lbctl.yml and inventory, the process, the answers it gives and its old processes."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from lbctl_testkit.bench import lbctl_api
from lbctl_testkit.bench.procs import HOST, binary, lbctl_argv, popen
from lbctl_testkit.bench.watch import has_runtime_api
from lbctl_testkit.support import free_port
from lbctl_testkit.support.apache import apache_options, open_up

SHUTDOWN_TIMEOUT = "5s"  # hard-stop-after (haproxy) and worker_shutdown_timeout (nginx)
SHUTDOWN_SECONDS = 5.0
MAX_RELOADS = 5  # mworker-max-reloads (haproxy)
SAMPLE_EVERY = 0.05


class Setup:
    """lbctl.yml + inventory + the running load balancer for one target kind in ``directory``."""

    def __init__(self, kind: str, directory: Path, backend_ports: list[int], templates: str | None = None,
                 runtime_api: bool = False) -> None:
        self.kind, self.dir, self.backends = kind, directory, backend_ports
        self.port = free_port()
        self.config = directory / "lbctl.yml"
        self.inventory_path = directory / "inventory.yml"
        self.live = directory / {"haproxy": "haproxy.cfg", "apache": "httpd.conf"}.get(kind, "nginx.conf")
        self.proc: subprocess.Popen | None = None
        self.manager = f"{HOST}:{free_port()}"  # apache: server-status (balancer-manager: each listener's)
        target = {"kind": kind, "config": str(self.live), "binary": binary("apache2" if kind == "apache" else kind),
                  "probes": [{"url": f"http://{HOST}:{self.port}/"}],
                  "lock_timeout": "30s", "reload_timeout": "15s"}
        if kind == "haproxy":
            target.update(master_socket=str(directory / "master.sock"), master_log=str(directory / "haproxy.log"),
                          stats_socket=str(directory / "stats.sock"), state_file=str(directory / "haproxy.state"),
                          hard_stop_after=SHUTDOWN_TIMEOUT, mworker_max_reloads=MAX_RELOADS)
            if has_runtime_api():
                target["runtime_api"] = runtime_api  # off: every membership change is a reload
        elif kind == "apache":
            target.update(apache_options(directory, int(self.manager.rsplit(":", 1)[1])), threads_per_child=25,
                          max_request_workers=100)
            if not runtime_api:
                target["growth"] = 0  # no spare slots: every member added takes a graceful restart
        else:
            target.update(pid_file=str(directory / "nginx.pid"), error_log=str(directory / "error.log"),
                          temp_dir=str(directory / "tmp"), worker_processes=2,
                          worker_shutdown_timeout=SHUTDOWN_TIMEOUT)
            if os.geteuid() == 0:
                target["user"] = "root"  # the default worker user could not enter the 0700 temp dir
        settings = {"source": {"inventory": "inventory.yml"}, "state_dir": "state", "targets": {"edge": target}}
        if templates:
            settings["templates"] = str(Path(templates).resolve())
        self.config.write_text(yaml.safe_dump(settings))

    def members(self, step: int) -> list[int]:
        """Step ``n``: backends n % 3 and (n + 1) % 3 (so every step changes one member)."""
        n = len(self.backends)
        return sorted({step % n, (step + 1) % n})

    def write_inventory(self, step: int) -> None:
        """inventory.yml for step ``step``: listener ``web`` to pool ``app`` of its two members."""
        raw = {
            "listeners": {"web": {"address": HOST, "port": self.port, "default_pool": "app"}},
            "pools": {"app": {
                "health": {"type": "http", "path": "/", "interval": "1s"},
                "members": [{"name": f"b{i}", "address": HOST, "port": self.backends[i]} for i in self.members(step)],
            }},
        }
        self.inventory_path.write_text(yaml.safe_dump(raw))

    def apply(self) -> tuple[int, str, float]:
        """One ``lbctl apply``: exit code, output, seconds."""
        start = time.monotonic()
        done = subprocess.run([*lbctl_argv(), "apply", "-c", str(self.config)], capture_output=True, text=True,
                              cwd=self.dir, timeout=120)
        return done.returncode, (done.stdout + done.stderr).strip(), time.monotonic() - start

    def start(self) -> None:
        """Start the load balancer on the config in place, once it answers."""
        if self.kind == "haproxy":
            argv = [binary("haproxy"), "-W", "-f", str(self.live),
                    "-S", f"{self.dir / 'master.sock'},level,admin", "-p", str(self.dir / "haproxy.pid")]
            out = self.dir / "haproxy.log"
        elif self.kind == "apache":
            open_up(self.dir)
            argv, out = [binary("apache2"), "-f", str(self.live), "-DFOREGROUND"], self.dir / "apache2.stderr"
        else:
            argv = [binary("nginx"), "-c", str(self.live), "-p", f"{self.dir}/",
                    "-e", str(self.dir / "error.log"), "-g", "daemon off;"]
            out = self.dir / "nginx.stderr"
        self.proc = popen(argv, out)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: {out.read_text()[-2000:]}")
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} did not become ready in 10 s")

    def answers(self, count: int) -> Counter:
        """Which backends answered ``count`` fresh-connection GETs (``X-Backend``, or the error)."""
        seen: Counter = Counter()
        for _ in range(count):
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/", headers={"Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                seen[resp.getheader("X-Backend") or f"status {resp.status}"] += 1
            except (OSError, http.client.HTTPException) as exc:
                seen[type(exc).__name__] += 1
        return seen

    def ready(self) -> bool:
        """Whether the listener answers 200."""
        try:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            conn.request("GET", "/", headers={"Connection": "close"})
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def process_reloads(self) -> int | None:
        """Reloads the process itself counted: haproxy's ``show proc``, nginx's SIGHUPs and Apache's
        SIGUSR1s (graceful restarts) in their error logs."""
        if self.kind == "haproxy":
            try:
                return lbctl_api.MasterCLI(self.dir / "master.sock").show_proc(timeout=2.0).reloads
            except lbctl_api.CommandError:
                return None
        try:
            text = (self.dir / "error.log").read_text(errors="replace")
            return text.count("SIGUSR1 received") if self.kind == "apache" else text.count("SIGHUP) received")
        except OSError:
            return None

    def old_processes(self) -> int | None:
        """Old haproxy workers (``show proc``), nginx workers shutting down, or Apache's children
        of an older generation (server-status ``Stopping``); None if unknown."""
        if self.kind == "apache":
            return stopping(self.manager)
        if self.kind == "haproxy":
            try:
                return len(lbctl_api.MasterCLI(self.dir / "master.sock").show_proc(timeout=1.0).old_workers)
            except lbctl_api.CommandError:
                return None  # the master is re-executing
        gen = lbctl_api.nginx_ctl.generation(self.dir / "nginx.pid")
        return None if gen is None else len(gen.shutting_down)

    def stop(self) -> None:
        """TERM the master, then KILL its whole process group (old workers included)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def stopping(manager: str) -> int | None:
    """Apache's children still finishing after a graceful restart (``Stopping:`` on server-status)."""
    host, port = manager.rsplit(":", 1)
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=1)
        conn.request("GET", "/server-status?auto")
        body = conn.getresponse().read().decode(errors="replace")
        conn.close()
    except (OSError, http.client.HTTPException):
        return None
    found = re.search(r"^Stopping: (\d+)$", body, re.M)
    return int(found.group(1)) if found else None


class Sampler(threading.Thread):
    """Samples the number of old processes every ``SAMPLE_EVERY`` seconds."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(daemon=True)
        self.setup, self.stop, self.max, self.samples = setup, threading.Event(), 0, 0

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stop.wait(SAMPLE_EVERY):
            n = self.setup.old_processes()
            if n is not None:
                self.samples += 1
                self.max = max(self.max, n)
