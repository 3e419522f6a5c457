"""Leader election for the failover benchmark: hooks on the in-process Consul emulator that
time-stamp what an election does, restartable ``lbctl watch`` controllers, the audit log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

from lbctl_testkit.bench.haproxy import CMAINT, FMAINT, admin_state
from lbctl_testkit.bench.procs import HOST, binary, popen
from lbctl_testkit.support import free_port

KEY = "lbctl/leader"
POOL = "app"


class Recorder:
    """Wraps a few ``Store`` methods of the in-process emulator to time-stamp (wall clock,
    as the audit log) what an election does.  Events: ``(t, kind, who)``; kinds:
    pass (a controller's TTL check passed), critical (it went critical), invalidate
    (a controller's session was invalidated), acquire / release (of the leader key)."""

    def __init__(self, store) -> None:
        self.store = store
        self.events: list[tuple[float, str, str]] = []
        self.names: dict[str, str] = {}  # session id -> controller name
        kv_write, invalidate = store._kv_write, store._invalidate
        update_ttl, on_critical = store.agent_update_ttl, store._on_check_critical
        session_create = store.session_create

        def name_of(sid: str | None) -> str:
            if not sid:
                return ""
            if sid not in self.names and sid in store._sessions:
                self.names[sid] = store._sessions[sid]["Name"].removeprefix("lbctl ")
            return self.names.get(sid, sid)

        def h_session_create(body):
            sid = session_create(body)
            name_of(sid)
            return sid

        def h_kv_write(key, value, flags, *, session, lock_index=None):
            old = store._kv.get(key)
            before = old.get("Session") if old else None
            kv_write(key, value, flags, session=session, lock_index=lock_index)
            if key == KEY and session != before:
                if before:
                    self.events.append((time.time(), "release", name_of(before)))
                if session:
                    self.events.append((time.time(), "acquire", name_of(session)))

        def h_kv_del(key):  # behavior=delete is not used by lbctl, but count it anyway
            old = store._kv.get(key)
            kv_del(key)
            if key == KEY and old and old.get("Session"):
                self.events.append((time.time(), "release", name_of(old["Session"])))

        def h_invalidate(sid):
            if sid in store._sessions:
                self.events.append((time.time(), "invalidate", name_of(sid)))
            invalidate(sid)

        def h_update_ttl(cid, status, output):
            update_ttl(cid, status, output)
            if cid.startswith("service:lbctl-") and status == "passing":
                self.events.append((time.time(), "pass", cid.removeprefix("service:lbctl-")))

        def h_on_critical(node, cid):
            if cid.startswith("service:lbctl-"):
                self.events.append((time.time(), "critical", cid.removeprefix("service:lbctl-")))
            on_critical(node, cid)

        kv_del = store._kv_del
        store.session_create = h_session_create
        store._kv_write, store._kv_del, store._invalidate = h_kv_write, h_kv_del, h_invalidate
        store.agent_update_ttl, store._on_check_critical = h_update_ttl, h_on_critical

    def holder(self) -> str | None:
        """Who holds the leader key right now (None: nobody)."""
        with self.store._lock:
            rec = self.store._kv.get(KEY)
            sid = rec.get("Session") if rec else None
            return self.names.get(sid, sid) if sid else None

    def sessions(self) -> set[str]:
        """The controllers that hold a session now."""
        with self.store._lock:
            return {s["Name"].removeprefix("lbctl ") for s in self.store._sessions.values()}

    def holder_at(self, t: float) -> str | None:
        """Who held the leader key at wall time ``t`` (None: nobody)."""
        who = None
        for when, kind, name in list(self.events):
            if when > t:
                break
            if kind == "acquire":
                who = name
            elif kind == "release":
                who = None
        return who

    def after(self, t: float, kind: str, who: str | None = None) -> tuple[float, str] | None:
        """The first event of ``kind`` (by ``who``) at or after ``t``: (time, name)."""
        for when, k, name in list(self.events):
            if when >= t and k == kind and (who is None or name == who):
                return when, name
        return None

    def before(self, t: float, kind: str, who: str) -> float | None:
        """The time of the last event of ``kind`` by ``who`` at or before ``t``."""
        last = None
        for when, k, name in list(self.events):
            if when > t:
                break
            if k == kind and name == who:
                last = when
        return last

    def released_between(self, who: str, start: float, end: float) -> bool:
        """Whether ``who`` released the key between ``start`` and ``end``."""
        return any(start < when < end and k == "release" and name == who for when, k, name in list(self.events))


def maint(stats: Path, address: str) -> bool | None:
    """Whether HAProxy has the ``app`` server at ``address`` in maintenance (None: no answer)."""
    state = admin_state(stats, POOL, address)
    return None if state is None else bool(state & (FMAINT | CMAINT))


class Controller:
    """One ``lbctl watch`` process (restartable under the same name)."""

    def __init__(self, d: Path, name: str, base: dict, ttl: int, lock_delay: int) -> None:
        self.d, self.name = d, name
        self.base, self.ttl, self.lock_delay = base, ttl, lock_delay
        self.log = d / f"watch-{name}.log"
        self.config = d / f"lbctl-{name}.yml"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.starts = 0
        self.down: list[tuple[float, float | None, str]] = []  # (from, to, why): killed or paused, wall clock

    def start(self) -> None:
        """Start (or restart) the watch, on a fresh metrics port."""
        self.port = free_port()  # a fresh port each time: no bind race with the killed process's socket
        settings = json.loads(json.dumps(self.base))
        settings["election"] = {"name": self.name, "ttl": f"{self.ttl}s", "lock_delay": f"{self.lock_delay}s"}
        settings["metrics"] = {"listen": f"{HOST}:{self.port}"}
        self.config.write_text(yaml.safe_dump(settings))
        with open(self.log, "ab") as out:
            out.write(f"--- bench: start #{self.starts + 1} of {self.name}\n".encode())
        self.proc = popen([sys.executable, "-m", "lbctl", "watch", "-c", str(self.config)], self.log, cwd=self.d)
        self.starts += 1
        if self.down and self.down[-1][1] is None:
            self.down[-1] = (self.down[-1][0], time.time(), self.down[-1][2])

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def metric(self, name: str) -> float | None:
        """The value of an unlabelled metric, or None (no answer)."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/metrics", timeout=1.0) as resp:
                body = resp.read().decode()
        except OSError:
            return None
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def ready(self) -> bool:
        """Whether its /readyz answers 200."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/readyz", timeout=1.0) as resp:
                return resp.status == 200
        except OSError:
            return False

    def kill(self) -> float:
        """SIGKILL its process group; the wall time."""
        t = time.time()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.down.append((t, None, "killed"))
        self.proc.wait(10)
        return t

    def pause(self) -> float:
        """SIGSTOP its process group; the wall time."""
        t = time.time()
        os.killpg(self.proc.pid, signal.SIGSTOP)
        self.down.append((t, None, "paused"))
        return t

    def resume(self) -> float:
        """SIGCONT its process group; the wall time."""
        t = time.time()
        os.killpg(self.proc.pid, signal.SIGCONT)
        self.down[-1] = (self.down[-1][0], t, "paused")
        return t

    def was_down(self, t: float) -> str | None:
        """Why it was down at wall time ``t`` (killed, paused) or None."""
        for start, end, why in self.down:
            if start <= t and (end is None or t < end):
                return why
        return None

    def log_text(self) -> str:
        """Its whole log so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def write_setup(d: Path, consul_port: int, listen_port: int, backend_port: int, wait: str) -> dict:
    """inventory.yml and the controllers' shared lbctl.yml (service ``app`` into one shared HAProxy)."""
    inventory = {
        "version": 1,
        "defaults": {"pool": {"health": {"type": "none"}}},
        "listeners": {"web": {"address": HOST, "port": listen_port, "default_pool": "probe"}},
        "pools": {"probe": {"members": [{"name": "b0", "address": HOST, "port": backend_port}]}},
    }
    (d / "inventory.yml").write_text(yaml.safe_dump(inventory))
    base = {
        "source": {"inventory": "inventory.yml",
                   "consul": {"address": f"{HOST}:{consul_port}", "services": [POOL], "wait": wait}},
        "watch": {"min_wait": "0s", "max_wait": "1s", "retry_max": "2s"},
        "state_dir": "state",
        "audit_log": "audit.jsonl",
        "targets": {"edge": {
            "kind": "haproxy", "config": "haproxy.cfg", "binary": binary("haproxy"), "shared": True,
            "master_socket": "master.sock", "master_log": "haproxy.log",
            "stats_socket": str(d / "stats.sock"), "state_file": str(d / "haproxy.state"),
            "hard_stop_after": "5s",
            "probes": [{"url": f"http://{HOST}:{listen_port}/"}],
            "lock_timeout": "30s", "reload_timeout": "15s",
        }},
    }
    (d / "lbctl.yml").write_text(yaml.safe_dump(base))
    return base


def instance(k: int) -> tuple[str, str]:
    """Instance k of ``app``: its id and loopback address."""
    return f"{POOL}-{k}", f"127.0.0.{11 + k}"


class Flips:
    """One instance at a time: take instance k out (critical), bring it back next, then k+1."""

    def __init__(self, instances: int) -> None:
        self.instances, self.i = instances, 0

    def next(self) -> tuple[str, str, str]:
        """The next flip: instance id, address, new status."""
        k, out = (self.i // 2) % self.instances, self.i % 2 == 0
        self.i += 1
        sid, address = instance(k)
        return sid, address, "critical" if out else "passing"


def audit_entries(path: Path) -> list[dict]:
    """The audit log's entries, each with its wall-clock ``_start`` and ``_end``."""
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        if line.strip():
            e = json.loads(line)
            e["_end"] = datetime.fromisoformat(e["time"]).timestamp()
            e["_start"] = e["_end"] - (e.get("duration_s") or 0.0)
            out.append(e)
    return out
