"""``lbctl watch`` for the benchmarks: the inventory and lbctl.yml of one HAProxy target fed by
the Consul emulator, the watch as a real process, and diagnostic launchers around lbctl's CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from lbctl_testkit.bench import lbctl_api
from lbctl_testkit.bench.procs import HOST, binary, popen, stop_group


def write_inventory(d: Path, listen_port: int, probe_port: int, routes: list[dict] | None = None) -> None:
    """inventory.yml: listener ``web`` to pool ``probe`` (one backend, health type ``none`` by default)."""
    listener = {"address": HOST, "port": listen_port, "default_pool": "probe", **({"routes": routes} if routes else {})}
    inventory = {
        "version": 1,
        "defaults": {"pool": {"health": {"type": "none"}}},
        "listeners": {"web": listener},
        "pools": {"probe": {"members": [{"name": "b0", "address": HOST, "port": probe_port}]}},
    }
    (d / "inventory.yml").write_text(yaml.safe_dump(inventory))


def lbctl_config(d: Path, consul_port: int, services: list[str], wait: str, listen_port: int,
                 max_connections: int = 0, **target) -> dict:
    """lbctl.yml: ``services`` from Consul into one HAProxy target ``edge``, plus ``target`` keys."""
    return {
        "source": {
            "inventory": "inventory.yml",
            "consul": {"address": f"{HOST}:{consul_port}", "wait": wait, "services": services,
                       **({"max_connections": max_connections} if max_connections else {})},
        },
        "watch": {"min_wait": "0s"},
        "state_dir": "state",
        "targets": {"edge": {
            "kind": "haproxy", "config": "haproxy.cfg", "binary": binary("haproxy"),
            "master_socket": "master.sock", "master_log": "haproxy.log",
            "stats_socket": str(d / "stats.sock"), "state_file": str(d / "haproxy.state"),
            "hard_stop_after": "5s",
            "probes": [{"url": f"http://{HOST}:{listen_port}/"}],
            "lock_timeout": "30s", "reload_timeout": "15s",
            **target,
        }},
    }


def write_config(path: Path, config: dict) -> Path:
    """Write lbctl.yml ``config`` to ``path``."""
    path.write_text(yaml.safe_dump(config))
    return path


def has_runtime_api() -> bool:
    """Whether this lbctl has the haproxy target key ``runtime_api``."""
    return "runtime_api" in lbctl_api.config.TARGET_KEYS.get("haproxy", ())


def path_keys(path: str) -> dict:
    """Target keys choosing how a member change goes live.  ``reload``: through a checked
    reload (``runtime_api: false`` where lbctl has the Runtime API path); ``runtime``:
    through the stats socket.  Older lbctl versions without the key always reload."""
    supported = has_runtime_api()
    if path == "runtime" and not supported:
        sys.exit("this lbctl has no runtime_api target key: only --path reload can run")
    return {"runtime_api": path == "runtime"} if supported else {}


def apply(d: Path, config: Path, timeout: float = 300) -> None:
    """``lbctl apply -c config`` in ``d``; raises with its stderr when it fails."""
    out = subprocess.run([sys.executable, "-m", "lbctl", "apply", "-c", str(config)], cwd=d, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"lbctl apply failed: {out.stdout[-1000:]} {out.stderr[-2000:]}")


def start_watch(d: Path, config: Path, log_name: str = "watch.log", launcher: list[str] | None = None,
                **kwargs) -> subprocess.Popen:
    """``lbctl watch -c config`` in ``d`` (``launcher``: instead of ``python -m lbctl``), log in ``log_name``."""
    argv = [*(launcher or [sys.executable, "-m", "lbctl"]), "watch", "-c", str(config)]
    return popen(argv, d / log_name, cwd=d, **kwargs)


def stop_watch(watch: subprocess.Popen) -> None:
    """SIGTERM, up to 30 s for a clean exit, then SIGKILL of its group."""
    stop_group(watch, signal.SIGTERM, 30.0)


def first_timeout(services: int) -> float:
    """Seconds the first change may take: it waits for lbctl's first reading of every service."""
    return max(60.0, services / 20)


def launcher(source: str, out: Path) -> list[str]:
    """The argv that runs lbctl's CLI through ``source`` (GC_LAUNCHER, TRACE_LAUNCHER), writing to ``out``."""
    return [sys.executable, "-c", source, str(out)]


# ``--gc``: run ``lbctl watch`` through this launcher, which adds up the time the cyclic
# garbage collector takes per generation and writes it as JSON at exit.  After the
# warm-up the bench sends it SIGUSR1 (``--gc freeze``: ``gc.freeze()``, so everything alive
# then, e.g. the watch threads and their sessions, leaves the collector's view) or
# SIGUSR2 (``--gc off``: ``gc.disable()``).  Diagnostics only: lbctl itself is unchanged.
GC_LAUNCHER = """
import atexit, gc, json, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *_: (gc.collect(), gc.freeze()))
signal.signal(signal.SIGUSR2, lambda *_: gc.disable())
spent, runs, t = [0.0, 0.0, 0.0], [0, 0, 0], [0.0]
def cb(phase, info):
    if phase == "start":
        t[0] = time.perf_counter()
    else:
        spent[info["generation"]] += time.perf_counter() - t[0]
        runs[info["generation"]] += 1
gc.callbacks.append(cb)
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps({"seconds": spent, "collections": runs})))
from lbctl.cli import main
sys.argv[0] = "lbctl"
main()
"""

# ``--trace``: run ``lbctl watch`` through this launcher, which wraps a few of lbctl's functions
# (imported from lbctl_api, their one place) to append "<label>> <monotonic>" / "<label>< <monotonic>"
# lines to a file (CLOCK_MONOTONIC is shared with the bench), so that each change's path can be
# cut into legs.  Diagnostics only: lbctl itself is unchanged.
TRACE_LAUNCHER = """
import sys, time
out = open(sys.argv.pop(1), "a", buffering=1)
from lbctl_testkit.bench.lbctl_api import (checks, consul_client as consul, controller, deploy, filetarget,
                                           haproxy_target as haproxy, state, watcher)
def wrap(owner, name, label, when=None):
    fn = getattr(owner, name, None)
    if fn is None:  # not in this version of lbctl
        return
    def wrapped(*a, **kw):
        on = when is None or when(*a, **kw)
        if on:
            out.write(label + "> %.6f\\n" % time.monotonic())
        try:
            return fn(*a, **kw)
        finally:
            if on:
                out.write(label + "< %.6f\\n" % time.monotonic())
    setattr(owner, name, wrapped)
wrap(consul.Client, "get", "checks", lambda self, kind, *a, **kw: kind == "checks")
wrap(checks.Reading, "__init__", "decode", lambda self, body, book=None: book is not None)
wrap(watcher.ConsulWatcher, "_checks", "feed")
wrap(watcher.ConsulWatcher, "_queue", "queued", lambda self, names, urgent: urgent and bool(names))
wrap(consul.Client, "health", "reader")
wrap(consul.Watch, "pause", "throttle")
wrap(watcher.ConsulWatcher, "_catalog", "catalog")
wrap(consul.Client, "checks_index", "checks-index")
wrap(controller.Controller, "changed", "changed")
wrap(controller.Controller, "round", "round")
wrap(controller.Controller, "write", "write")
wrap(deploy, "deploy", "deploy")
wrap(haproxy.HAProxyTarget, "plan", "plan")
wrap(haproxy.HAProxyTarget, "check", "check")
wrap(haproxy.HAProxyTarget, "running", "running")
wrap(haproxy.HAProxyTarget, "runtime", "runtime")
wrap(haproxy, "socket_command", "socket")
wrap(filetarget.FileTarget, "verify", "verify")
wrap(state.TargetState, "record", "record")
from lbctl.cli import main
sys.argv[0] = "lbctl"
main()
"""
