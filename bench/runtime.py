"""Benchmark (issue #6): membership changes from Consul through the Runtime API against the
reload path, in the same run, under continuous loopback load.

Reuses bench/propagation.py's set-up (imported, not copied): the Consul emulator in a child
process that time-stamps every change, HAProxy in master-worker mode, a real ``lbctl watch``.

* ``--services`` services × ``--instances`` instances; all but ``--real`` of them point at
  unused 10.x addresses (health type ``none``).  The first ``--real`` services
  (``svc-0000`` …) have their instances on ``--backends`` real HTTP backends on loopback
  (one child process), routed by path (``/r0/`` …) from the one listener.
* A load generator (another child process, ``--load-threads`` threads, ``--rate``
  requests/s in all) sends ``GET /rN/`` through HAProxy, a new connection per request
  (``Connection: close``), and counts answers other than 200 and connection errors as
  failed.  It stops by itself after ``--load-max`` seconds (or when told, or when its
  parent goes).
* Two phases, one after the other on the same emulator, HAProxy and load:
  ``runtime`` (lbctl.yml with ``runtime_api: true``, lbctl's default spare slots) and
  ``reload`` (``runtime_api: false``, so lbctl's default of no slots).  Each starts its own
  ``lbctl watch`` (log: ``watch-<phase>.log``), makes ``--warmup`` uncounted changes, then
  ``--changes`` counted ones, and stops the watch.  The reload that switches the config
  between phases is outside both windows.
* A change is one of: add (register an instance on a free backend), remove (deregister),
  drain / undrain (``Meta lb-state=drain``), re-weight (``Weights.Passing``), health critical /
  passing; on the real services in turn, so consecutive changes touch different services.
  Each real pool keeps between 3 and 7 members and at least 2 serving ones, so the guard
  never refuses and the 4 spare slots (9 in all) never run out.
* "Live": from right before the change in the emulator (CLOCK_MONOTONIC, shared) to the
  first ``show servers state <backend>`` on the stats socket (polled every ``--poll`` ms) in
  which the member's address:port shows the new state (in maintenance or not, user weight).
  The next change starts ``--gap`` ms after lbctl recorded the round (last-apply.json).
* Reloads per phase: ``reloads`` in the master CLI's ``show proc`` at the start and end of the
  counted window.  Failed requests per phase: the load generator's counters over the window.

After the runtime phase, each step of one runtime-path apply is timed here with lbctl's own
functions on the same config and HAProxy (``--steps`` runs, median), for the breakdown.

Progress on stderr; a detailed JSON object, then the summary JSON as the last line::

    python bench/runtime.py [--services 1000] [--changes 200] [--real 4] [--rate 200]
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
from pathlib import Path

import yaml

from propagation import (HOST, Emulator, _Ok, _Quiet, code_version, cpu_seconds, duration, first_timeout, free_port,
                         idle_phase, instance_id, lbctl_config, log, loadavg, mtime, percentile, rss_mb, service_name,
                         start_haproxy, stop_group, summarize, watching)


# ``--trace``: run the runtime phase's ``lbctl watch`` through this launcher, which wraps a few of
# lbctl's functions to append "<label>> <monotonic>" / "<label>< <monotonic>" lines to a file
# (CLOCK_MONOTONIC is shared with this process), so that each change's path can be cut into
# legs.  Diagnostics only: lbctl itself is unchanged.
TRACE_LAUNCHER = """
import sys, time
out = open(sys.argv.pop(1), "a", buffering=1)
from lbctl import deploy
from lbctl.discovery import checks, consul, watcher
from lbctl.targets import filetarget, state
from lbctl.targets.haproxy import target as haproxy
from lbctl.watch import controller
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

# (leg, from, to): each label's first time-stamp after the change (t0: right before it, in
# the emulator; live: the poll that saw it).  The legs after "live" keep the controller busy:
# the next change waits for them.
LEGS = (("emulator wakes the feed, encodes, sends; lbctl reads the body", "t0", "decode>"),
        ("checks answer: the changed stretch decoded", "decode>", "decode<"),
        ("checks answer: the rest of the HTTP call", "decode<", "checks<"),
        ("feed: compare with the book, queue the service", "feed>", "queued>"),
        ("a reader picks the service up", "queued>", "reader>"),
        ("reader: GET /v1/health/service/<name>", "reader>", "reader<"),
        ("reader answer handled, controller told", "reader<", "changed>"),
        ("controller wakes up", "changed>", "round>"),
        ("round: build, guard, gauges, deploy lock", "round>", "plan>"),
        ("plan", "plan>", "plan<"),
        ("plan done to runtime (check, running, fence)", "plan<", "runtime>"),
        ("of which: check", "check>", "check<"),
        ("of which: running (master CLI show proc)", "running>", "running<"),
        ("runtime: the command batch", "runtime>", "socket<"),
        ("runtime: the read-back", "socket<", "runtime<"),
        ("poll sees it (from the runtime read-back)", "runtime<", "live"),
        ("after live: verify (show proc, probes, loaded.json)", "verify>", "verify<"),
        ("after live: record (last-apply.json, audit, metrics)", "record>", "record<"),
        ("whole round (the controller is busy)", "round>", "round<"))


def trace_legs(path: Path, results: list[dict]) -> dict:
    """Median and p99 ms of each leg (over the changes where both of its ends were found, in
    order), from each change to the next one; and how often a feed waited for its throttle."""
    events = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            label, _, t = line.partition(" ")
            events.append((float(t), label))
    events.sort()
    legs: dict[str, list[float]] = {name: [] for name, _, _ in LEGS}
    import bisect
    times = [t for t, _ in events]
    throttled = 0
    for r, after in zip(results, results[1:] + [None]):
        if r["live_ms"] is None:
            continue
        at = {"t0": r["t0"], "live": r["t0"] + r["live_ms"] / 1000}
        end = after["t0"] if after else at["live"] + 1.0
        for t, label in events[bisect.bisect_left(times, r["t0"]):bisect.bisect_right(times, end)]:
            at.setdefault(label, t)  # the first of each after the change
            throttled += label == "throttle>"
        for name, a, b in LEGS:
            if a in at and b in at and at[b] >= at[a]:
                legs[name].append((at[b] - at[a]) * 1000)
    return {"changes": len(results), "throttle_waits": throttled,
            **{name: {"n": len(v), "p50": round(statistics.median(v), 2), "p99": round(percentile(v, 99), 2)}
               for name, v in legs.items() if v}}


# --------------------------------------------------------------------------- backends and load, child processes

def backends_main(conn, count: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    servers = [_Quiet((HOST, 0), _Ok) for _ in range(count)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    conn.send([s.server_address[1] for s in servers])
    while not conn.poll(1.0):
        if os.getppid() == 1:
            return


def load_main(port: int, paths: list[str], threads: int, rate: float, max_seconds: float, counters,
              stop, errors_file: str) -> None:
    """Until ``stop`` is set, ``max_seconds`` pass or the parent goes: GET through HAProxy,
    a new connection per request, ``rate`` per second over ``threads`` threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    deadline = time.monotonic() + max_seconds
    lock = threading.Lock()
    parent = os.getppid()

    def fail(msg: str) -> None:
        with counters.get_lock():
            counters[1] += 1
        with lock, open(errors_file, "a") as f:
            f.write(f"{time.monotonic():.3f} {msg}\n")

    def worker(n: int) -> None:
        interval = threads / rate
        nxt = time.monotonic() + n * interval / threads
        i = n
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            path = paths[i % len(paths)]
            i += 1
            try:
                with socket.create_connection((HOST, port), timeout=5) as s:
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                status = data.split(b"\r\n", 1)[0]
                if status.startswith(b"HTTP/1.1 200") and data.endswith(b"ok"):
                    with counters.get_lock():
                        counters[0] += 1
                else:
                    fail(f"{path} {status.decode(errors='replace')[:60] or 'empty answer'}")
            except OSError as exc:
                fail(f"{path} {type(exc).__name__}: {exc}")
            nxt += interval
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


# --------------------------------------------------------------------------- the set-up

def write_setup(d: Path, args, consul_port: int, listen_port: int, probe_port: int) -> dict[str, Path]:
    inventory = {
        "version": 1,
        "defaults": {"pool": {"health": {"type": "none"}}},
        "listeners": {"web": {"address": HOST, "port": listen_port, "default_pool": "probe",
                              "routes": [{"path": f"/r{r}/", "pool": service_name(r)} for r in range(args.real)]}},
        "pools": {"probe": {"members": [{"name": "b0", "address": HOST, "port": probe_port}]}},
    }
    (d / "inventory.yml").write_text(yaml.safe_dump(inventory))
    out = {}
    for phase in ("runtime", "reload"):
        config = lbctl_config(d, args, consul_port, listen_port, runtime_api=phase == "runtime")
        out[phase] = d / f"lbctl-{phase}.yml"
        out[phase].write_text(yaml.safe_dump(config))
    return out


# --------------------------------------------------------------------------- the changes

class Changes:
    """Membership changes on the real services, in turn.  Tracks what Consul holds and
    says, per change, the Consul calls and what HAProxy must show for which address:port."""

    def __init__(self, real: int, instances: int, ports: list[int], seed: int) -> None:
        self.rng = random.Random(seed)
        self.ports = ports
        self.turn = 0
        self.serial = 0
        # per service: instance id -> {port, weight, drain, health}
        self.pools = [{instance_id(r, k): {"port": ports[k % len(ports)], "weight": 10, "drain": False,
                                           "health": "passing"} for k in range(instances)} for r in range(real)]

    def register_call(self, r: int, iid: str) -> tuple:
        m = self.pools[r][iid]
        return ("add_service", (service_name(r),),
                {"service_id": iid, "address": HOST, "port": m["port"], "status": m["health"],
                 "weights": {"Passing": m["weight"], "Warning": 1},
                 "meta": {"lb-state": "drain"} if m["drain"] else {}})

    def initial(self) -> list[tuple]:
        return [self.register_call(r, iid) for r in range(len(self.pools)) for iid in sorted(self.pools[r])]

    @staticmethod
    def serving(m: dict) -> bool:
        return m["health"] == "passing" and not m["drain"]

    def next(self) -> dict:
        r = self.turn % len(self.pools)
        self.turn += 1
        pool = self.pools[r]
        serving = [i for i, m in pool.items() if self.serving(m)]
        used = {m["port"] for m in pool.values()}
        free = [p for p in self.ports if p not in used]
        spare = len(serving) > 2  # one serving member may stop
        options = []
        if len(pool) < 7 and free:
            options.append("add")
        if len(pool) > 3 and spare:
            options.append("remove")
        if spare:
            options += ["drain", "critical"]
        options += ["reweight"] * bool(serving)
        options += ["undrain"] * any(m["drain"] and m["health"] == "passing" for m in pool.values())
        options += ["passing"] * any(m["health"] != "passing" for m in pool.values())
        kind = self.rng.choice(options)
        if kind == "add":
            self.serial += 1
            iid = f"{service_name(r)}-n{self.serial}"
            pool[iid] = {"port": self.rng.choice(free), "weight": self.rng.randint(1, 20), "drain": False,
                         "health": "passing"}
            call = self.register_call(r, iid)
        elif kind == "remove":  # a passing member (serving or draining): one in maintenance shows no change
            iid = self.rng.choice(sorted(i for i, m in pool.items() if m["health"] == "passing"))
            call = ("remove_service", (iid,), {})
        elif kind in ("drain", "reweight", "critical"):
            iid = self.rng.choice(sorted(serving))
            m = pool[iid]
            if kind == "drain":
                m["drain"] = True
                call = self.register_call(r, iid)
            elif kind == "reweight":
                m["weight"] = self.rng.choice([w for w in range(1, 21) if w != m["weight"]])
                call = self.register_call(r, iid)
            else:
                m["health"] = "critical"
                call = ("set_service_health", (iid, "critical"), {})
        elif kind == "undrain":
            iid = self.rng.choice(sorted(i for i, m in pool.items() if m["drain"] and m["health"] == "passing"))
            pool[iid]["drain"] = False
            call = self.register_call(r, iid)
        else:  # passing
            iid = self.rng.choice(sorted(i for i, m in pool.items() if m["health"] != "passing"))
            pool[iid]["health"] = "passing"
            call = ("set_service_health", (iid, "passing"), {})
        m = pool.pop(iid) if kind == "remove" else pool[iid]
        # what HAProxy must show for this address:port: None (nothing serving there) or the user weight
        want = None if kind == "remove" or m["health"] != "passing" else (0 if m["drain"] else m["weight"])
        return {"kind": kind, "backend": service_name(r), "instance": iid, "port": m["port"], "want": want,
                "call": call}


def shows(stats: Path, backend: str, port: int, want: int | None) -> bool | None:
    """Whether HAProxy shows ``want`` for HOST:port in ``backend`` (None: no answer)."""
    from lbctl.errors import CommandError
    from lbctl.targets.haproxy.ctl import show_servers_state

    try:
        rows = [s for s in show_servers_state(stats, backend, timeout=1.0) if (s.addr, s.port) == (HOST, port)]
    except (CommandError, OSError):
        return None
    live = [s for s in rows if not s.admin_state & 0x03]  # not in maintenance
    if want is None:
        return not live
    return any(s.uweight == want for s in live)


def one_change(emu: Emulator, stats: Path, record: Path, change: dict, poll: float, timeout: float) -> dict:
    before = mtime(record)
    t0 = emu.call("call", [change["call"]])
    deadline = t0 + timeout
    live = done = None
    while time.monotonic() < deadline:
        if live is None and shows(stats, change["backend"], change["port"], change["want"]):
            live = time.monotonic()
        if live is not None and mtime(record) != before:
            done = time.monotonic()
            break
        time.sleep(poll)
    return {"kind": change["kind"], "backend": change["backend"], "instance": change["instance"], "t0": t0,
            "live_ms": None if live is None else (live - t0) * 1000,
            "done_ms": None if done is None else (done - t0) * 1000}


def reloads(d: Path) -> int:
    from lbctl.targets.haproxy.ctl import MasterCLI
    return MasterCLI(d / "master.sock").show_proc(timeout=5.0).reloads


# --------------------------------------------------------------------------- one phase

def run_phase(phase: str, d: Path, config: Path, args, emu: Emulator, changes: Changes, counters, haproxy) -> dict:
    stats, record = d / "stats.sock", d / "state" / "edge" / "last-apply.json"
    log(f"{phase}: starting lbctl watch -c {config.name}")
    with open(d / f"watch-{phase}.log", "ab") as out:
        trace = args.trace and phase == "runtime"
        launcher = [sys.executable, "-c", TRACE_LAUNCHER, str(d / "trace.log")] if trace else \
            [sys.executable, "-m", "lbctl"]
        watch = subprocess.Popen([*launcher, "watch", "-c", str(config)], cwd=d, stdout=out,
                                 stderr=out, start_new_session=True)
    try:
        # Both phases render the same file (servers named after members, no spare slots), so the
        # watch starts with nothing to apply: wait until it holds its blocking queries.
        watching(emu, watch)
        if watch.poll() is not None:
            raise RuntimeError(f"lbctl watch exited: {(d / f'watch-{phase}.log').read_text()[-2000:]}")
        for n in range(args.warmup):
            r = one_change(emu, stats, record, changes.next(), args.poll / 1000, first_timeout(args) if n == 0 else 60)
            if r["live_ms"] is None:
                raise RuntimeError(f"{phase}: warm-up change never went live: {r}")
            log(f"{phase}: warm-up {r['kind']} on {r['backend']}: live after {r['live_ms']:.0f} ms")
            time.sleep(args.gap / 1000)
        spy = None
        if args.profile and phase == args.phases.split(",")[0]:
            spy_bin = shutil.which("py-spy") or sys.exit("--profile needs py-spy (pip install py-spy)")
            spy = subprocess.Popen([spy_bin, "record", "-p", str(watch.pid), "-o", args.profile, "-f", "raw",
                                    "-r", "500", "--nonblocking", "--threads"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        idle = idle_phase(emu, args, duration(args.wait), watch.pid) if args.idle != "0" else {}
        if idle:
            log(f"{phase}: idle: {idle['requests']} requests in {idle['window_s']}s = {idle['requests_per_min']}/min")
        time.sleep(1)
        ok0, failed0 = counters[0], counters[1]
        reloads0, load0 = reloads(d), loadavg()
        cpu_w, cpu_h = cpu_seconds(watch.pid), cpu_seconds(haproxy.pid)
        start = time.monotonic()
        results = []
        for i in range(args.changes):
            results.append(one_change(emu, stats, record, changes.next(), args.poll / 1000, args.timeout))
            if (i + 1) % 50 == 0:
                recent = [x["live_ms"] for x in results[-50:] if x["live_ms"] is not None]
                log(f"{phase}: {i + 1}/{args.changes}: last 50 live p50 {statistics.median(recent):.1f} ms, "
                    f"max {max(recent):.1f} ms" if recent else f"{phase}: {i + 1}: none went live")
            time.sleep(args.gap / 1000)
        end = time.monotonic()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(60)
            stop_group(spy)
        time.sleep(0.5)  # requests in flight at the end still count
        cpu_w, cpu_h = cpu_seconds(watch.pid) - cpu_w, cpu_seconds(haproxy.pid) - cpu_h
        out = {"reloads": reloads(d) - reloads0, "ok": counters[0] - ok0, "failed": counters[1] - failed0,
               "idle": idle, "lbctl_rss_mb": rss_mb(watch.pid), "consul_connections": emu.call("conns"),
               "loadavg_1m": {"before": load0, "after": loadavg()}, "window": (start, end)}
    finally:
        watch.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            watch.wait(30)
        stop_group(watch)
    lat = [r["live_ms"] for r in results if r["live_ms"] is not None]
    by_kind = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r["live_ms"])
    if args.trace and phase == "runtime":
        out["trace_legs_ms"] = trace_legs(d / "trace.log", results)
    text = (d / f"watch-{phase}.log").read_text(errors="replace")
    seconds = end - start
    out.update({
        "live_ms": summarize(lat), "round_done_ms": summarize([r["done_ms"] for r in results if r["done_ms"]]),
        "timeouts": sum(r["live_ms"] is None for r in results),
        "live_ms_by_kind": {k: {"n": len(v), **summarize([x for x in v if x is not None])}
                            for k, v in sorted(by_kind.items())},
        "seconds": round(seconds, 1), "requests_per_s": round((out["ok"] + out["failed"]) / seconds, 1),
        "cpu_ms_per_change": {"lbctl_watch_and_children": round(cpu_w * 1000 / len(results), 1),
                              "haproxy": round(cpu_h * 1000 / len(results), 1)},
        "applies_logged": {"runtime_api": text.count("through the runtime API"),
                           "reload": text.count("and haproxy reloaded")},
        "watch_log_problems": [line for line in text.splitlines() if " ERROR " in line or " WARNING " in line][:5],
        "config_servers": (d / "haproxy.cfg").read_text().count("\n    server "),
        "config_bytes": (d / "haproxy.cfg").stat().st_size,
    })
    return out


# --------------------------------------------------------------------------- the runtime path, step by step

def runtime_steps(config_path: Path, runs: int, backend: str) -> dict:
    """Each step of one runtime-path apply, timed here (median wall ms) with lbctl's own functions
    on the same config and the same running HAProxy, for a re-weight of one real member.  The
    weight is put back after each run (the same commands again), so HAProxy ends as it began."""
    import copy

    from lbctl import guard
    from lbctl.discovery import consul as consul_client, consul_model, merge
    from lbctl.session import Session
    from lbctl.targets.haproxy import cfg as haproxy_cfg
    from lbctl.targets.haproxy.ctl import parse_servers_state, socket_command
    from lbctl.watch import daemon
    from lbctl.watch.metrics import Metrics

    session = Session(config_path, None, "edge", None, need_config=True)
    setup = daemon.setup(session)
    target = setup.targets[0]
    client = consul_client.Client(session.config.consul)
    try:
        t = time.perf_counter()
        entries = consul_client.snapshot(client)[0]
        snapshot_s = time.perf_counter() - t
    finally:
        client.close()
    policy = consul_model.Policy(False)
    pools = {name: merge.service_pool(setup.parts, name, e, policy)[0] for name, e in entries.items()}
    changed = copy.deepcopy(entries[backend])
    for e in changed:  # every serving instance: another weight
        svc = e["Service"]
        svc["Weights"] = {"Passing": 20 if (svc.get("Weights") or {}).get("Passing") != 20 else 19, "Warning": 1}
    stats = target.settings.options.stats_socket
    metrics = Metrics()
    wall: dict[str, list[float]] = {}

    def step(name, fn):
        t = time.perf_counter()
        out = fn()
        wall.setdefault(name, []).append(time.perf_counter() - t)
        return out

    info = {}
    from lbctl.targets.haproxy import slots
    target.plan(merge.desired(setup.parts, setup.static, pools))  # the file in place: its layout, as in the watch
    layout = target.layout
    for _ in range(runs):
        def build():
            pools[backend] = merge.service_pool(setup.parts, backend, changed, policy)[0]
            return merge.desired(setup.parts, setup.static, pools)
        desired = step("1 build (one pool + the model)", build)
        step("2 guard (every watched pool)", lambda: guard.refusals(desired, desired, set(pools), 0, 0.5))
        step("3 metrics gauges (the changed pool)", lambda: metrics.pools(desired, {backend}))
        # A watch round meets the file in place (its previous candidate) unparsed, with the layout of that
        # candidate kept: so here, cold caches and the layout of the file in place.
        for cache in (haproxy_cfg.parse, getattr(slots, "by_backend", None)):
            if cache is not None:
                cache.cache_clear()
        target.layout = layout
        change = step("4 plan (read live file, slots, render, compare)", lambda: target.plan(desired))
        live = step("4a of which: read the live file", target.live_text)
        haproxy_cfg.parse.cache_clear()
        if hasattr(slots, "by_backend"):
            slots.by_backend.cache_clear()
            step("4b of which: parse the live file (slots.by_backend, cold)", lambda: slots.by_backend(live))
            slotted = step("4c of which: slot layout (the changed pool; the rest kept)",
                           lambda: slots.assign(desired, live, target.settings.slots, layout[1])[0])
            step("4d of which: render the whole config", lambda: target.render(slotted))
        if change.noop:
            return {"error": "no change to time"}
        diff = step("5 runtime_changes (changed lines only)",
                    lambda: haproxy_cfg.runtime_changes(change.live, change.candidate))
        if not diff:
            return {"error": f"not a runtime change: {diff!r}"}
        info["commands"] = sum(len(haproxy_cfg.commands(c)) for c in diff)
        cmds = ";".join(cmd for c in diff for cmd in haproxy_cfg.commands(c))
        step("6 stats socket: the batch of commands", lambda: socket_command(stats, cmds, timeout=5.0))
        step("7 stats socket: show servers state read-back",
             lambda: parse_servers_state(socket_command(stats, f"show servers state {backend}", timeout=5.0)))
        back = haproxy_cfg.runtime_changes(change.candidate, change.live) or []
        socket_command(stats, ";".join(cmd for c in back for cmd in haproxy_cfg.commands(c)), timeout=5.0)
        step("8 after live: haproxy -c", lambda: target.check(change))
    out = {name: round(statistics.median(v) * 1000, 2) for name, v in sorted(wall.items())}
    before_live = [k for k in out if k[0] in "1234567" and k[1] == " "]
    out["sum of 1-7 (before the change is live)"] = round(sum(out[k] for k in before_live), 2)
    out["consul snapshot of every service, once (not on the path)"] = round(snapshot_s * 1000, 1)
    out.update(info)
    return out


def consul_leg(emu: Emulator, runs: int, svc: int) -> dict:
    """From right before a change in the emulator to a parked blocking query's answer read and
    decoded here (HTTP + JSON): the Consul part of the path, without lbctl (median, p99 ms)."""
    import http.client

    times = []
    for n in range(runs):
        conn = http.client.HTTPConnection(HOST, emu.port, timeout=30)
        conn.request("GET", f"/v1/health/service/{service_name(svc)}")
        resp = conn.getresponse()
        resp.read()
        index = resp.getheader("X-Consul-Index")
        got = []

        def block():
            conn.request("GET", f"/v1/health/service/{service_name(svc)}?index={index}&wait=10s")
            r = conn.getresponse()
            json.loads(r.read())
            got.append(time.monotonic())

        th = threading.Thread(target=block)
        th.start()
        time.sleep(0.05)
        t0 = emu.call("call", [("add_service", (service_name(svc),),
                                {"service_id": instance_id(svc, 0), "address": "10.99.0.1", "port": 8080,
                                 "weights": {"Passing": 1 + n % 2 + 1, "Warning": 1}})])
        th.join(15)
        conn.close()
        if got:
            times.append((got[0] - t0) * 1000)
    return {"runs": len(times), "p50": round(statistics.median(times), 2), "p99": round(percentile(times, 99), 2),
            "max": round(max(times), 2)} if times else {}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--changes", type=int, default=200, help="counted changes per phase")
    parser.add_argument("--real", type=int, default=4, help="services with real loopback backends")
    parser.add_argument("--backends", type=int, default=8, help="real HTTP backends (shared by the real services)")
    parser.add_argument("--rate", type=float, default=200, help="load: requests per second in all")
    parser.add_argument("--load-threads", type=int, default=4)
    parser.add_argument("--load-max", type=float, default=1800, help="s after which the load stops by itself")
    parser.add_argument("--wait", default="10s", help="source.consul.wait")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gap", type=float, default=50, help="ms between a round's end and the next change")
    parser.add_argument("--poll", type=float, default=1, help="ms between stats-socket polls")
    parser.add_argument("--timeout", type=float, default=15, help="s a change may take before it counts as a timeout")
    parser.add_argument("--steps", type=int, default=20, help="runs of the runtime-path step timing (0: skip)")
    parser.add_argument("--phases", default="runtime,reload", help="which phases, in order")
    parser.add_argument("--profile", default="",
                        help="py-spy record the first phase's lbctl watch into this file (raw stacks, 500 Hz)")
    parser.add_argument("--trace", action="store_true",
                        help="diagnostic: time-stamp lbctl's steps in the runtime phase's watch (see TRACE_LAUNCHER)")
    parser.add_argument("--idle", default="",
                        help="idle window before each phase's counted changes (default: 6 wait periods; 0: none)")
    parser.add_argument("--max-connections", type=int, default=0,
                        help="source.consul.max_connections (default: lbctl's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed on stderr)")
    args = parser.parse_args()
    if args.instances > args.backends or args.real > args.services:
        sys.exit("--backends must be >= --instances and --real <= --services")
    phases = [p for p in args.phases.split(",") if p]
    started = time.monotonic()
    d = Path(tempfile.mkdtemp(prefix="lbctl-runtime-"))
    ctx = mp.get_context("fork")
    emu = haproxy = backends = load = None
    stop_load = ctx.Event()
    counters = ctx.Array("q", 2)  # ok, failed
    try:
        log(f"emulator: {args.services} services x {args.instances} instances; {args.backends} backends")
        emu = Emulator(args.services, args.instances, duration(args.wait))
        conn, child = ctx.Pipe()
        backends = ctx.Process(target=backends_main, args=(child, args.backends), daemon=True)
        backends.start()
        if not conn.poll(30):
            raise RuntimeError("the backends did not start")
        ports = conn.recv()
        changes = Changes(args.real, args.instances, ports, args.seed)
        emu.call("call", changes.initial())
        listen = free_port()
        configs = write_setup(d, args, emu.port, listen, ports[0])
        t = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "lbctl", "apply", "-c", str(configs[phases[0]])], cwd=d,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"lbctl apply failed: {out.stderr[-2000:]}")
        log(f"lbctl apply wrote haproxy.cfg in {time.monotonic() - t:.1f}s; starting haproxy and the load")
        haproxy = start_haproxy(d, d / "haproxy.cfg")
        load = ctx.Process(target=load_main, daemon=True,
                           args=(listen, [f"/r{r}/x" for r in range(args.real)], args.load_threads, args.rate,
                                 args.load_max, counters, stop_load, str(d / "failed-requests.log")))
        load.start()
        time.sleep(2)
        if counters[0] == 0:
            raise RuntimeError(f"no request succeeded through haproxy: {counters[1]} failed")
        results, steps = {}, {}
        for phase in phases:
            results[phase] = run_phase(phase, d, configs[phase], args, emu, changes, counters, haproxy)
            r = results[phase]
            log(f"{phase}: p50 {r['live_ms'].get('p50')} p99 {r['live_ms'].get('p99')} ms, "
                f"{r['reloads']} reloads, {r['failed']} failed of {r['ok'] + r['failed']} requests")
            if phase == "runtime" and args.steps:
                log("timing the steps of one runtime-path apply on the same config and HAProxy")
                try:
                    steps = runtime_steps(configs[phase], args.steps, service_name(0))
                except Exception as exc:  # noqa: BLE001 - keep the results
                    steps = {"error": f"{type(exc).__name__}: {exc}"}
        stop_load.set()
        load.join(10)
        conns = emu.call("conns")  # before consul_leg's own connections
        consul = consul_leg(emu, 20, args.services - 1) if args.steps else {}
        failures = []
        with contextlib.suppress(OSError):
            failures = (d / "failed-requests.log").read_text().splitlines()
        for phase, r in results.items():
            start, end = r.pop("window")
            r["failed_samples"] = [line for line in failures if start <= float(line.split()[0]) < end + 0.5][:5]
        detail = {"phases": results, "runtime_steps_ms": steps, "consul_leg_ms": consul,
                  "load": {"rate": args.rate, "threads": args.load_threads, "ok": counters[0],
                           "failed": counters[1], "failed_outside_windows": counters[1] - sum(
                               r["failed"] for r in results.values())},
                  "services": args.services, "instances": args.instances, "real": args.real,
                  "backends": args.backends, "wait": args.wait, "min_wait": "0s", "poll_ms": args.poll,
                  "lbctl": code_version(), "cpus": os.cpu_count(), "total_s": round(time.monotonic() - started, 1)}
        print(json.dumps(detail, indent=1))
        rt, rl = results.get("runtime", {}), results.get("reload", {})
        print(json.dumps({"services": args.services, "changes": args.changes,
                          "runtime_p50_ms": rt.get("live_ms", {}).get("p50"),
                          "runtime_p99_ms": rt.get("live_ms", {}).get("p99"),
                          "reload_p50_ms": rl.get("live_ms", {}).get("p50"),
                          "reload_p99_ms": rl.get("live_ms", {}).get("p99"),
                          "runtime_reloads": rt.get("reloads"), "reload_reloads": rl.get("reloads"),
                          "timeouts": sum(r["timeouts"] for r in results.values()),
                          "failed": sum(r["failed"] for r in results.values()),
                          "requests": sum(r["ok"] + r["failed"] for r in results.values()),
                          "peak_consul_connections": conns["peak"], "consul_429": conns["refused"],
                          "cpu_ms_per_change": {p: {"lbctl": r["cpu_ms_per_change"]["lbctl_watch_and_children"],
                                                    "haproxy": r["cpu_ms_per_change"]["haproxy"]}
                                                for p, r in results.items()},
                          "lbctl_rss_mb": {p: r["lbctl_rss_mb"].get("now") for p, r in results.items()},
                          "idle_requests_per_min": {p: r["idle"].get("requests_per_min") for p, r in results.items()},
                          "queries_held": {p: r["idle"].get("queries_held") for p, r in results.items()},
                          "wait_s": duration(args.wait),
                          "idle_bound_per_min": {p: r["idle"].get("bound_per_min") for p, r in results.items()}}))
    finally:
        stop_load.set()
        if load is not None:
            load.join(10)
            if load.is_alive():
                load.kill()
        stop_group(haproxy)
        if backends is not None:
            backends.kill()
            backends.join(5)
        if emu is not None:
            emu.stop()
        if args.keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
