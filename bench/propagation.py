"""Benchmark: propagation from Consul to a live HAProxy through a real ``lbctl watch``.

Everything runs on 127.0.0.1 in a temp dir and is always stopped at the end
(process groups; every wait has a deadline):

* the Consul emulator (``lbctl_testkit.emulators.consul``) in a child process of its own
  (its request threads do not share this process's GIL with the poller), with
  ``--services`` services of ``--instances`` instances each, all passing, on the
  agent's node; every request it receives is time-stamped (arrival, path, query);
* a tiny HTTP backend for the probe's pool (the watched pools need no backends:
  their health type is ``none``);
* HAProxy in master-worker mode (``-W -S master.sock,level,admin``), started on
  the config that ``lbctl apply -c lbctl.yml`` wrote;
* ``lbctl watch -c lbctl.yml`` as a real process (its log: ``watch.log``).

lbctl.yml lists every service by name under ``source.consul.services``, with
``wait: --wait``, the default ``min_query_interval`` (100 ms), ``watch.min_wait:
0s`` and ``max_connections: --max-connections`` (default: lbctl's).  lbctl holds
two blocking queries (the catalog and every check) and reads the services that
changed; the emulator enforces a real agent's cap of 200 connections per client
and counts the most connections lbctl held at once and the ones it refused (429).  ``--path reload``
(default) sets ``runtime_api: false`` on the target, so every change takes the
checked reload path; ``--path runtime`` lets lbctl use the Runtime API.
``--slots N`` sets the target's spare server slots (default: lbctl's default).

Phases:

1. warm-up: ``--warmup`` flips, not counted (they prove the first round is done);
2. idle: reset the emulator's request counter, wait ``--idle`` (default 6 wait
   periods) with no change, count the requests and the blocking queries held
   (each answers at least once a wait: the bound is 2 × held × 60 / wait a
   minute), and, from the time stamps, the mean interval between two requests
   of the same query, and the busiest second;
3. churn: ``--changes`` health flips, one at a time.  Critical flips take one
   instance of a fresh service out; they alternate with passing flips that bring
   back the instance out the longest (two or three are out at a time), so
   consecutive flips are on different services and every flip is a real change.  For each flip the time
   is taken in the emulator process right before ``set_service_health`` (CLOCK_MONOTONIC
   is shared by both processes), and the flipped server (matched by address) is
   polled on the HAProxy stats socket (``show servers state <backend>``, every
   ``--poll`` ms) until its FMAINT bit says what Consul says: that is "live".  The
   flip's round is "done" when lbctl rewrote ``state/edge/last-apply.json`` (after
   its reload and probes); the next flip starts ``--gap`` ms after that.  Requests
   are attributed per flip (the flipped service's query / every other query), and
   flips are split by whether an idle burst (>= 10 % of the queries timing out
   together) arrived while they propagated.  CPU time of the lbctl watch process
   (with its reaped children: ``haproxy -c``) and of HAProxy is read from /proc.

After the churn, ``lbctl watch`` is stopped and each step of one reload-path apply
is timed in this process with lbctl's own functions, on the same config and the
same HAProxy (wall and CPU ms, ``--steps`` runs, median).

Diagnostics: ``--profile FILE`` runs ``py-spy record`` on the watch process during
the churn; ``--gc`` runs the watch through a launcher that times Python's
cyclic garbage collector (``--gc stats|freeze|off``; see ``GC_LAUNCHER``).

Progress goes to stderr; a detailed JSON object, then the summary JSON as the last line::

    python bench/propagation.py [--services 1000] [--instances 5] [--changes 200] [--wait 10s]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

HOST = "127.0.0.1"
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
# srv_admin_state FMAINT: set for a server rendered ``disabled`` (0x05 with CMAINT) and for
# ``set server ... state maint``; a runtime ``state ready`` clears it but leaves CMAINT (0x04).
FMAINT = 0x01
T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def duration(text: str) -> float:
    """``10s``, ``500ms``, ``1m`` or a bare number of seconds."""
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def service_name(i: int) -> str:
    return f"svc-{i:04d}"


def instance_id(i: int, k: int) -> str:
    return f"{service_name(i)}-i{k}"


def instance_address(i: int, k: int) -> str:
    return f"10.{i // 250}.{i % 250}.{k + 1}"


# --------------------------------------------------------------------------- the emulator, in a child process

def emulator_main(conn, services: int, instances: int, wait: float) -> None:
    """Serve the emulator and answer commands on ``conn`` until "stop" (or the parent goes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from lbctl_testkit.emulators.consul import ConsulEmulator

    emu = ConsulEmulator(default_wait=wait, max_wait=600)
    seen: list[tuple[float, str]] = []  # (arrival, raw path with query); list.append is atomic
    serve = emu._serve

    def stamped(method, raw_path, headers, body):
        seen.append((time.monotonic(), raw_path))
        return serve(method, raw_path, headers, body)

    emu._serve = stamped
    emu.start()
    with emu.transaction():
        for i in range(services):
            for k in range(instances):
                emu.add_service(service_name(i), service_id=instance_id(i, k),
                                address=instance_address(i, k), port=8080, status="passing")
    conn.send(emu.port)
    try:
        while True:
            if not conn.poll(1.0):
                if os.getppid() == 1:
                    return
                continue
            op, *args = conn.recv()
            if op == "stop":
                conn.send(None)
                return
            if op == "flip":
                sid, status = args
                t = time.monotonic()  # right before the change
                emu.set_service_health(sid, status)
                conn.send(t)
            elif op == "call":  # [(method, args, kwargs), ...] in one transaction (bench/runtime.py)
                calls, = args
                t = time.monotonic()  # right before the change
                try:
                    with emu.transaction():
                        for name, a, kw in calls:
                            getattr(emu, name)(*a, **kw)
                except Exception as exc:  # noqa: BLE001 - the parent raises it
                    conn.send(exc)
                    continue
                conn.send(t)
            elif op == "count":
                conn.send(emu.request_count(*args))
            elif op == "reset":
                emu.reset_requests()
                conn.send(None)
            elif op == "blocking":
                conn.send(emu.blocking_queries)
            elif op == "conns":  # the per-client connection cap's counters (on, at Consul's default 200)
                conn.send({"peak": emu.peak_connections(), "refused": emu.refused()})
            elif op == "log":
                since, until = args
                conn.send([(t, p) for t, p in list(seen) if since <= t < until])
            else:
                conn.send(ValueError(op))
    finally:
        emu.stop()


class Emulator:
    def __init__(self, services: int, instances: int, wait: float) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=emulator_main, args=(child, services, instances, wait), daemon=True)
        self.proc.start()
        if not self.conn.poll(120):
            raise RuntimeError("the emulator did not start")
        self.port = self.conn.recv()
        self.lock = threading.Lock()

    def call(self, *msg):
        with self.lock:
            self.conn.send(msg)
            if not self.conn.poll(60):
                raise RuntimeError(f"the emulator does not answer {msg[0]}")
            out = self.conn.recv()
        if isinstance(out, Exception):
            raise out
        return out

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# --------------------------------------------------------------------------- a backend for the probe

class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # HAProxy and the probes hang up as they please


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


# --------------------------------------------------------------------------- HAProxy

def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path=SBIN)
    if not found:
        sys.exit("haproxy is not installed")
    return found


def stats_query(path: Path, cmd: str, timeout: float = 1.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(cmd.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(data)


def admin_state(stats: Path, backend: str, address: str) -> int | None:
    """``srv_admin_state`` of the server at ``address`` in ``show servers state <backend>``
    (None: no answer).  Matched by address, not name: with spare slots (``targets.*.slots``)
    servers are named ``slotN``, without them after the instance."""
    try:
        text = stats_query(stats, f"show servers state {backend}")
    except OSError:
        return None
    for line in text.splitlines()[2:]:
        fields = line.split()
        if len(fields) > 6 and fields[4] == address:
            return int(fields[6])
    return None


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


def start_haproxy(directory: Path, config: Path) -> subprocess.Popen:
    from lbctl.errors import CommandError
    from lbctl.targets.haproxy.ctl import MasterCLI

    with open(directory / "haproxy.log", "ab") as out:
        proc = subprocess.Popen([haproxy_binary(), "-W", "-f", str(config),
                                 "-S", f"{directory / 'master.sock'},level,admin",
                                 "-p", str(directory / "haproxy.pid")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (directory / "haproxy.log").read_text()[-2000:]
            raise RuntimeError(f"haproxy exited with {proc.returncode}: {tail}")
        with contextlib.suppress(CommandError):
            if MasterCLI(directory / "master.sock").show_proc(timeout=1.0).workers:
                return proc
        time.sleep(0.05)
    raise RuntimeError("haproxy did not start a worker within 30 s")


def stop_group(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """SIGCONT (in case it is paused) and signal the leader, wait, then SIGKILL its process group."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


# --------------------------------------------------------------------------- the set-up

def write_setup(d: Path, args, consul_port: int, listen_port: int, backend_port: int) -> Path:
    inventory = {
        "version": 1,
        "defaults": {"pool": {"health": {"type": "none"}}},
        "listeners": {"web": {"address": HOST, "port": listen_port, "default_pool": "probe"}},
        "pools": {"probe": {"members": [{"name": "b0", "address": HOST, "port": backend_port}]}},
    }
    (d / "inventory.yml").write_text(yaml.safe_dump(inventory))
    config = lbctl_config(d, args, consul_port, listen_port,
                          **path_keys(args.path), **({"slots": args.slots} if args.slots is not None else {}))
    path = d / "lbctl.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def lbctl_config(d: Path, args, consul_port: int, listen_port: int, **target) -> dict:
    """lbctl.yml: every service from Consul into one HAProxy target ``edge``, plus ``target`` keys."""
    return {
        "source": {
            "inventory": "inventory.yml",
            "consul": {"address": f"{HOST}:{consul_port}", "wait": args.wait,
                       "services": [service_name(i) for i in range(args.services)],
                       **({"max_connections": args.max_connections} if args.max_connections else {})},
        },
        "watch": {"min_wait": "0s"},
        "state_dir": "state",
        "targets": {"edge": {
            "kind": "haproxy", "config": "haproxy.cfg", "binary": haproxy_binary(),
            "master_socket": "master.sock", "master_log": "haproxy.log",
            "stats_socket": str(d / "stats.sock"), "state_file": str(d / "haproxy.state"),
            "hard_stop_after": "5s",
            "probes": [{"url": f"http://{HOST}:{listen_port}/"}],
            "lock_timeout": "30s", "reload_timeout": "15s",
            **target,
        }},
    }


def path_keys(path: str) -> dict:
    """Target keys choosing how a member change goes live.  ``reload``: through a checked
    reload (``runtime_api: false`` where lbctl has the Runtime API path); ``runtime``:
    through the stats socket.  Older lbctl versions without the key always reload."""
    from lbctl import config as lbctl_config

    supported = "runtime_api" in lbctl_config.TARGET_KEYS.get("haproxy", ())
    if path == "runtime" and not supported:
        sys.exit("this lbctl has no runtime_api target key: only --path reload can run")
    return {"runtime_api": path == "runtime"} if supported else {}


class Flipper:
    """Chooses the flips: critical on a fresh service, alternating with passing on the
    instance out the longest (two or three are out at a time; in the steady state it
    went out five flips earlier), so consecutive flips touch different services."""

    def __init__(self, services: int, instances: int, seed: int) -> None:
        rng = random.Random(seed)
        self.order = list(range(services))
        rng.shuffle(self.order)
        self.rng = rng
        self.instances = instances
        self.fresh = 0
        self.down: deque[tuple[int, int]] = deque()

    def next(self) -> tuple[int, int, str]:
        if len(self.down) >= 2 and (len(self.down) >= 3 or self.fresh >= len(self.order)):
            svc, k = self.down.popleft()
            return svc, k, "passing"
        if self.fresh >= len(self.order):
            raise RuntimeError("no fresh service left")
        svc, k = self.order[self.fresh], self.rng.randrange(self.instances)
        self.fresh += 1
        self.down.append((svc, k))
        return svc, k, "critical"


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and of its reaped children (``haproxy -c`` runs as lbctl's child)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> dict:
    """Resident memory of ``pid`` now and at its peak (VmRSS, VmHWM), in MB."""
    try:
        lines = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    except OSError:
        return {}
    return {"now": round(int(lines["VmRSS"].split()[0]) / 1024, 1), "peak": round(int(lines["VmHWM"].split()[0]) / 1024, 1)}


def watching(emu: "Emulator", watch: subprocess.Popen, what: str = "lbctl watch") -> None:
    """Until lbctl watch holds its blocking queries (two: the catalog and the checks), or exits."""
    wait_for(lambda: watch.poll() is not None or emu.call("blocking") >= 2, 120, f"{what} to block on Consul")
    if watch.poll() is not None:
        raise RuntimeError(f"{what} exited")


def first_timeout(args) -> float:
    """Seconds the first change may take: it waits for lbctl's first reading of every service."""
    return max(60.0, args.services / 20)


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def one_flip(emu: Emulator, stats: Path, record: Path, svc: int, k: int, status: str, poll: float,
             timeout: float) -> dict:
    backend, server, address = service_name(svc), instance_id(svc, k), instance_address(svc, k)
    want_maint = status != "passing"
    before = mtime(record)
    t0 = emu.call("flip", server, status)
    deadline = t0 + timeout
    live = done = None
    polls = 0
    while time.monotonic() < deadline:
        if live is None:
            state = admin_state(stats, backend, address)
            polls += 1
            if state is not None and bool(state & FMAINT) == want_maint:
                live = time.monotonic()
        if live is not None and mtime(record) != before:
            done = time.monotonic()
            break
        time.sleep(poll)
    return {"service": backend, "server": server, "status": status, "t0": t0,
            "live_ms": None if live is None else (live - t0) * 1000,
            "done_ms": None if done is None else (done - t0) * 1000, "polls": polls}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")


# --------------------------------------------------------------------------- the steps of one apply, timed here

def step_times(config_path: Path, runs: int) -> dict:
    """Each step of one reload-path apply, timed here on the same config and the same running
    HAProxy (after ``lbctl watch`` stopped), for a change of one member's state.

    Per step: median wall ms and median CPU ms (this thread, or the child for ``haproxy -c``).
    The steps call lbctl's own functions, which may move: a step that cannot run says why.
    """
    import copy
    import resource

    from lbctl import deploy
    from lbctl.discovery import consul as consul_client, consul_model, merge
    from lbctl.session import Session
    from lbctl.watch import daemon

    session = Session(config_path, None, "edge", None, need_config=True)
    setup = daemon.setup(session)
    target = setup.targets[0]
    client = consul_client.Client(session.config.consul)
    try:
        entries = consul_client.snapshot(client)
    finally:
        client.close()
    policy = consul_model.Policy(False)
    pools = {name: merge.service_pool(setup.parts, name, e, policy)[0] for name, e in entries.items()}
    name0 = sorted(entries)[0]
    flipped = copy.deepcopy(entries[name0])  # one instance critical: a one-line change against the live file
    for check_ in flipped[0].get("Checks") or []:
        if check_.get("ServiceID"):
            check_["Status"] = "critical"

    def children_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    state: dict = {}

    def step(name: str, fn, child: bool = False):
        if name in errors:
            return None
        w, c, cc = time.perf_counter(), time.thread_time(), children_cpu()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - report and go on
            errors[name] = f"{type(exc).__name__}: {exc}"[:200]
            return None
        wall.setdefault(name, []).append(time.perf_counter() - w)
        cpu.setdefault(name, []).append(children_cpu() - cc if child else time.thread_time() - c)
        return out

    def build():
        pools[name0] = merge.service_pool(setup.parts, name0, flipped, policy)[0]
        return merge.desired(setup.parts, setup.static, pools)

    for _ in range(runs):
        desired = step("1 build (one pool + the model)", build)
        from lbctl import guard
        step("1b guard (every watched pool)", lambda: guard.refusals(desired, desired, set(pools), 0, 0.5))
        try:
            from lbctl.watch.metrics import Metrics
            metrics = Metrics()
            step("1c metrics gauges (every pool)", lambda: metrics.pools(desired))
        except ImportError:
            pass
        step("2a render (whole config)", lambda: target.render(desired))
        change = step("2b plan (read live file, lay out slots, render)", lambda: target.plan(desired))
        if change is None or change.noop:
            errors.setdefault("2b plan (read live file, lay out slots, render)", "no change to time")
            break
        state["bytes"], state["lines"] = len(change.candidate), change.candidate.count("\n")
        try:
            from lbctl.targets.haproxy import cfg as haproxy_cfg
            step("2c runtime diff (parse both configs)",
                 lambda: haproxy_cfg.runtime_changes(change.live, change.candidate))
        except ImportError:
            pass
        step("3 haproxy -c (child CPU)", lambda: target.check(change), child=True)
        from lbctl.targets import files
        scratch = target.path.with_name("bench-write.cfg")
        step("4 backup + atomic write (same size, to a scratch file)",
             lambda: (target.backups.save(target.path), files.atomic_write(scratch, change.candidate)))
        step("5a server-state dump + filter (parse both configs)", lambda: target.save_server_states(change))
        step("5b master reload until the new worker shows (wall)",
             lambda: target.master.reload(timeout=target.settings.reload_timeout_ms / 1000))
        step("6 verify (show proc + probes)", lambda: target.verify(change))
        if hasattr(deploy, "changed"):
            step("7 audit diff of the change (difflib)", lambda: deploy.changed(change))
    target.path.with_name("bench-write.cfg").unlink(missing_ok=True)
    out: dict = {name: {"wall_ms": round(statistics.median(v) * 1000, 1),
                        "cpu_ms": round(statistics.median(cpu[name]) * 1000, 1)} for name, v in sorted(wall.items())}
    if errors:
        out["not_timed"] = errors
    out["config_bytes"], out["config_lines"] = state.get("bytes"), state.get("lines")
    return out


# --------------------------------------------------------------------------- main

def summarize(latencies: list[float]) -> dict:
    if not latencies:
        return {}
    return {"p50": round(percentile(latencies, 50), 1), "p90": round(percentile(latencies, 90), 1),
            "p99": round(percentile(latencies, 99), 1), "max": round(max(latencies), 1),
            "min": round(min(latencies), 1), "mean": round(statistics.fmean(latencies), 1)}


def idle_phase(emu: Emulator, args, wait: float, watch_pid: int) -> dict:
    window = duration(args.idle) if args.idle else 6 * wait
    log(f"idle: {window:g}s with no change")
    emu.call("reset")
    cpu = cpu_seconds(watch_pid)
    start = time.monotonic()
    time.sleep(window)
    end = time.monotonic()
    cpu = cpu_seconds(watch_pid) - cpu
    count = emu.call("count")
    held = emu.call("blocking")
    seen = emu.call("log", start, end)
    per_path: dict[str, list[float]] = {}
    for t, raw in seen:
        per_path.setdefault(raw.split("?")[0], []).append(t)
    gaps = [b - a for ts in per_path.values() for a, b in zip(ts, ts[1:])]
    bins = Counter(int(t - start) for t, _ in seen)
    return {"window_s": round(end - start, 1), "requests": count,
            "requests_per_min": round(count * 60 / (end - start)),
            "queries_seen": len(per_path),
            "mean_interval_s": round(statistics.fmean(gaps), 3) if gaps else None,
            "queries_held": held, "wait_s": wait,
            "bound_per_min": round(2 * held * 60 / wait, 1),  # each held query answers at least once a wait
            "busiest_second": max(bins.values()) if bins else 0,
            "lbctl_watch_cpu_percent": round(100 * cpu / (end - start), 1),
            "quietest_second": min(bins.get(i, 0) for i in range(int(end - start)))}


def code_version() -> str:
    """The lbctl checkout this ran: commit, and "+dirty" when the working tree differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "lbctl"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--wait", default="10s", help="source.consul.wait: how long one blocking query waits")
    parser.add_argument("--idle", default="", help="idle window (default: 6 wait periods)")
    parser.add_argument("--warmup", type=int, default=3, help="flips before the measured ones")
    parser.add_argument("--gap", type=float, default=50, help="ms between a round's end and the next flip")
    parser.add_argument("--poll", type=float, default=2, help="ms between stats-socket polls")
    parser.add_argument("--timeout", type=float, default=15, help="s a flip may take before it counts as a timeout")
    parser.add_argument("--steps", type=int, default=10, help="runs of the per-step timing (0: skip)")
    parser.add_argument("--slots", type=int, default=None,
                        help="targets.edge.slots (spare servers per backend; default: lbctl's own default)")
    parser.add_argument("--path", choices=("reload", "runtime"), default="reload",
                        help="how a member change goes live: a checked reload (default) or the Runtime API")
    parser.add_argument("--profile", default="",
                        help="py-spy record the lbctl watch process during the churn into this file (raw stacks)")
    parser.add_argument("--gc", choices=("stats", "freeze", "off"), default=None,
                        help="diagnostic: run lbctl watch through a launcher that times Python's garbage collector "
                             "(freeze: gc.freeze() after the warm-up; off: gc.disable() after the warm-up)")
    parser.add_argument("--max-connections", type=int, default=0,
                        help="source.consul.max_connections (default: lbctl's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed on stderr)")
    args = parser.parse_args()
    if args.changes + args.warmup > 2 * args.services:
        sys.exit("--changes needs more services")
    wait = duration(args.wait)
    started = time.monotonic()
    lbctl = [sys.executable, "-m", "lbctl"]
    d = Path(tempfile.mkdtemp(prefix="lbctl-propagation-"))
    emu = haproxy = watch = httpd = spy = None
    watch_fds = None
    try:
        log(f"emulator: {args.services} services x {args.instances} instances")
        emu = Emulator(args.services, args.instances, wait)
        httpd = _Quiet((HOST, 0), _Ok)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        config = write_setup(d, args, emu.port, free_port(), httpd.server_address[1])
        t = time.monotonic()
        out = subprocess.run([*lbctl, "apply", "-c", str(config)], cwd=d, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"lbctl apply failed: {out.stderr[-2000:]}")
        log(f"lbctl apply wrote haproxy.cfg in {time.monotonic() - t:.1f}s; starting haproxy")
        haproxy = start_haproxy(d, d / "haproxy.cfg")
        log("starting lbctl watch")
        with open(d / "watch.log", "ab") as out_:
            launcher = [sys.executable, "-c", GC_LAUNCHER, str(d / "gc.json")] if args.gc else lbctl
            watch = subprocess.Popen([*launcher, "watch", "-c", str(config)], cwd=d, stdout=out_, stderr=out_,
                                     start_new_session=True)
        t = time.monotonic()
        try:
            watching(emu, watch)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {(d / 'watch.log').read_text()[-2000:]}") from None
        log(f"lbctl watch holds its blocking queries {time.monotonic() - t:.1f}s after the start")
        with contextlib.suppress(OSError):
            watch_fds = len(os.listdir(f"/proc/{watch.pid}/fd"))
        stats, record = d / "stats.sock", d / "state" / "edge" / "last-apply.json"
        flips = Flipper(args.services, args.instances, args.seed)
        for n in range(args.warmup):
            r = one_flip(emu, stats, record, *flips.next(), args.poll / 1000, first_timeout(args) if n == 0 else 60)
            if r["live_ms"] is None:
                raise RuntimeError(f"warm-up flip never went live: {r}")
            log(f"warm-up flip {r['server']} {r['status']}: live after {r['live_ms']:.0f} ms")
            time.sleep(args.gap / 1000)

        if args.gc in ("freeze", "off"):
            watch.send_signal(signal.SIGUSR1 if args.gc == "freeze" else signal.SIGUSR2)
            time.sleep(1)
        idle = idle_phase(emu, args, wait, watch.pid)
        log(f"idle: {idle['requests']} requests in {idle['window_s']}s = {idle['requests_per_min']}/min")

        log(f"churn: {args.changes} flips")
        if args.profile:
            spy_bin = shutil.which("py-spy") or sys.exit("--profile needs py-spy (pip install py-spy)")
            with open(d / "py-spy.log", "ab") as spy_log:
                spy = subprocess.Popen([spy_bin, "record", "-p", str(watch.pid), "-o", args.profile, "-f", "raw",
                                        "-r", "100", "--nonblocking", "--threads"], stdout=subprocess.DEVNULL,
                                       stderr=spy_log, start_new_session=True)
            time.sleep(1.0)
        emu.call("reset")
        results = []
        load_before = loadavg()
        cpu_watch, cpu_haproxy = cpu_seconds(watch.pid), cpu_seconds(haproxy.pid)
        churn_start = time.monotonic()
        for i in range(args.changes):
            r = one_flip(emu, stats, record, *flips.next(), args.poll / 1000, args.timeout)
            results.append(r)
            if (i + 1) % 20 == 0:
                recent = [x["live_ms"] for x in results[-20:] if x["live_ms"] is not None]
                log(f"  {i + 1}/{args.changes}: last 20 live p50 {statistics.median(recent):.0f} ms, "
                    f"max {max(recent):.0f} ms" if recent else f"  {i + 1}: no flip went live")
            time.sleep(args.gap / 1000)
        churn_end = time.monotonic()
        cpu_watch, cpu_haproxy = cpu_seconds(watch.pid) - cpu_watch, cpu_seconds(haproxy.pid) - cpu_haproxy
        rss = rss_mb(watch.pid)
        load_after = loadavg()
        churn_count = emu.call("count")
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(60)
            stop_group(spy)
        seen = emu.call("log", churn_start, churn_end)

        # requests per flip: on the flipped service's path, and on every other path
        starts = [r["t0"] for r in results] + [churn_end]
        flip_path, other = [], []
        by_time = sorted(seen)
        j = 0
        for i, r in enumerate(results):
            path = f"/v1/health/service/{r['service']}"
            mine = others = 0
            while j < len(by_time) and by_time[j][0] < starts[i + 1]:
                if by_time[j][0] >= starts[i]:
                    if by_time[j][1].split("?")[0] == path:
                        mine += 1
                    else:
                        others += 1
                j += 1
            flip_path.append(mine)
            other.append(others)
        # did a burst of idle blocking queries (all watches time out together) land during the flip?
        import bisect
        times = [t for t, _ in by_time]
        herd, calm = [], []
        for r in results:
            if r["live_ms"] is None:
                continue
            during = bisect.bisect_left(times, r["t0"] + r["live_ms"] / 1000) - bisect.bisect_left(times, r["t0"])
            (herd if during >= max(10, args.services // 10) else calm).append(r["live_ms"])
        churn_s = churn_end - churn_start
        idle_rate = idle["requests"] / idle["window_s"]  # per second, all queries
        lat = [r["live_ms"] for r in results if r["live_ms"] is not None]
        done = [r["done_ms"] for r in results if r["done_ms"] is not None]
        timeouts = sum(r["live_ms"] is None for r in results)

        conns = emu.call("conns")
        log("stopping lbctl watch")
        watch.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            watch.wait(30)
        gc_stats = {}
        if args.gc:
            with contextlib.suppress(OSError, ValueError):
                gc_stats = json.loads((d / "gc.json").read_text())
        steps = {}
        if args.steps:
            log("timing the steps of one apply on the same config and HAProxy")
            try:
                steps = step_times(config, args.steps)
            except Exception as exc:  # lbctl's library API may move under this bench: keep the results
                steps = {"error": f"{type(exc).__name__}: {exc}"}
        watch_log = (d / "watch.log").read_text(errors="replace")
        reloaded = watch_log.count("and haproxy reloaded")
        runtime = watch_log.count("through the runtime API")
        errors = [line for line in watch_log.splitlines() if " ERROR " in line or " WARNING " in line]

        detail = {
            "wait": args.wait, "min_wait": "0s", "min_query_interval": "100ms (default)",
            "instances": args.instances, "services_chosen_by": "name (source.consul.services)",
            "live_ms": summarize(lat), "round_done_ms": summarize(done), "timeouts": timeouts,
            "live_ms_by_overlap": {"with_idle_burst": {"flips": len(herd), **summarize(herd)},
                                   "without": {"flips": len(calm), **summarize(calm)},
                                   "burst": f">= {max(10, args.services // 10)} other requests "
                                            "while the flip propagated"},
            "cpu_ms_per_change": {"lbctl_watch_and_children": round(cpu_watch * 1000 / len(results), 1),
                                  "lbctl_watch_above_idle": round(
                                      (cpu_watch - idle["lbctl_watch_cpu_percent"] / 100 * churn_s)
                                      * 1000 / len(results), 1),
                                  "haproxy_master_and_workers": round(cpu_haproxy * 1000 / len(results), 1)},
            "loadavg_1m": {"before_churn": load_before, "after_churn": load_after},
            "idle": idle,
            "churn": {"seconds": round(churn_s, 1), "requests": churn_count,
                      "flipped_service_requests_per_flip": round(statistics.fmean(flip_path), 2),
                      "flipped_service_requests_max": max(flip_path),
                      "other_requests_per_flip": round(statistics.fmean(other), 2),
                      "other_expected_from_idle_rate": round(idle_rate * churn_s / len(results), 2)},
            "watch_open_fds": watch_fds, "path": args.path, "lbctl_rss_mb": rss,
            "consul_connections": {**conns, "max_connections": args.max_connections or "lbctl's default"},
            "applies_logged": {"reload": reloaded, "runtime_api": runtime}, "watch_log_problems": errors[:5],
            "apply_steps_ms": steps,
            **({"gc_mode": args.gc, "watch_gc_whole_run": gc_stats} if args.gc else {}),
            "lbctl": code_version(), "cpus": os.cpu_count(), "total_s": round(time.monotonic() - started, 1),
        }
        print(json.dumps(detail, indent=1))
        print(json.dumps({"services": args.services, "changes": args.changes, "wait": args.wait, "path": args.path,
                          "p50_ms": detail["live_ms"].get("p50"), "p99_ms": detail["live_ms"].get("p99"),
                          "max_ms": detail["live_ms"].get("max"), "timeouts": timeouts,
                          "idle_requests_per_min": idle["requests_per_min"], "queries_held": idle["queries_held"],
                          "wait_s": wait, "idle_bound_per_min": idle["bound_per_min"],
                          "churn_requests_per_min": round(churn_count * 60 / churn_s),
                          "peak_consul_connections": conns["peak"], "consul_429": conns["refused"],
                          "cpu_ms_per_change": {"lbctl": detail["cpu_ms_per_change"]["lbctl_watch_and_children"],
                                                "haproxy": detail["cpu_ms_per_change"]["haproxy_master_and_workers"]},
                          "lbctl_rss_mb": rss.get("now")}))
    finally:
        stop_group(spy)
        stop_group(watch)
        stop_group(haproxy)
        if httpd is not None:
            httpd.shutdown()
        if emu is not None:
            emu.stop()
        if args.keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
