"""Benchmark: propagation from Consul to a live HAProxy through a real ``lbctl watch``.

Everything runs on 127.0.0.1 in a temp dir and is always stopped at the end, on SIGTERM and
Ctrl-C too (process groups; every wait has a deadline); the harness is ``lbctl_testkit.bench``:

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
cyclic garbage collector (``--gc stats|freeze|off``; see ``lbctl_testkit.bench.watch.GC_LAUNCHER``).

Progress goes to stderr; a detailed JSON object, then the summary JSON as the last line::

    python bench/propagation.py [--services 1000] [--instances 5] [--changes 200] [--wait 10s]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import cpu_seconds, result_line, rss_mb, summarize
from lbctl_testkit.bench.backends import serve_ok
from lbctl_testkit.bench.changes import Flipper, one_flip, series
from lbctl_testkit.bench.consul import Emulator, idle_phase, service_name, watching
from lbctl_testkit.bench.haproxy import start_haproxy
from lbctl_testkit.bench.procs import (code_version, duration, loadavg, log, start_profile, stop_group,
                                       stop_profile)
from lbctl_testkit.bench.steps import step_times
from lbctl_testkit.bench.watch import (GC_LAUNCHER, apply, first_timeout, launcher, lbctl_config, path_keys,
                                       start_watch, stop_watch, write_config, write_inventory)
from lbctl_testkit.support import free_port


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--wait", default="10s", help="source.consul.wait: how long one blocking query waits")
    parser.add_argument("--idle", default="", help="idle window (default: 6 wait periods; 0: none)")
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
    return args


def write_setup(d: Path, args, consul_port: int, backend_port: int) -> Path:
    """inventory.yml and lbctl.yml: every service by name, the chosen path and slots."""
    listen = free_port()
    write_inventory(d, listen, backend_port)
    target = {**path_keys(args.path), **({"slots": args.slots} if args.slots is not None else {})}
    config = lbctl_config(d, consul_port, [service_name(i) for i in range(args.services)], args.wait, listen,
                          args.max_connections, **target)
    return write_config(d / "lbctl.yml", config)


def warm_up(emu: Emulator, d: Path, args, flips: Flipper) -> None:
    for n in range(args.warmup):
        r = one_flip(emu, d / "stats.sock", d / "state" / "edge" / "last-apply.json", *flips.next(),
                     args.poll / 1000, first_timeout(args.services) if n == 0 else 60)
        if r["live_ms"] is None:
            raise RuntimeError(f"warm-up flip never went live: {r}")
        log(f"warm-up flip {r['server']} {r['status']}: live after {r['live_ms']:.0f} ms")
        time.sleep(args.gap / 1000)


def churn(emu: Emulator, d: Path, args, flips: Flipper, watch, haproxy) -> dict:
    """The counted flips, one at a time; CPU, RSS, load and the emulator's requests around them."""
    emu.call("reset")
    load_before = loadavg()
    cpu_watch, cpu_haproxy = cpu_seconds(watch.pid), cpu_seconds(haproxy.pid)
    start = time.monotonic()
    results = series(lambda: one_flip(emu, d / "stats.sock", d / "state" / "edge" / "last-apply.json", *flips.next(),
                                      args.poll / 1000, args.timeout), args.changes, args.gap / 1000, 20, "  ")
    end = time.monotonic()
    return {"results": results, "start": start, "end": end, "load": (load_before, loadavg()),
            "cpu_watch": cpu_seconds(watch.pid) - cpu_watch, "cpu_haproxy": cpu_seconds(haproxy.pid) - cpu_haproxy,
            "rss": rss_mb(watch.pid), "requests": emu.call("count")}


def requests_per_flip(results: list[dict], seen: list[tuple[float, str]], end: float) -> tuple[list[int], list[int]]:
    """Requests during each flip: on the flipped service's path, and on every other path."""
    starts = [r["t0"] for r in results] + [end]
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
    return flip_path, other


def by_overlap(results: list[dict], seen: list[tuple[float, str]], burst: int) -> tuple[list[float], list[float]]:
    """Live times of the flips during which a burst of idle blocking queries (all watches time out
    together: ``burst`` requests or more) arrived, and of the others."""
    times = sorted(t for t, _ in seen)
    herd, calm = [], []
    for r in results:
        if r["live_ms"] is None:
            continue
        during = bisect.bisect_left(times, r["t0"] + r["live_ms"] / 1000) - bisect.bisect_left(times, r["t0"])
        (herd if during >= burst else calm).append(r["live_ms"])
    return herd, calm


def start_watching(emu: Emulator, d: Path, config: Path, args):
    """lbctl watch (through the GC launcher with ``--gc``), once it holds its blocking queries."""
    log("starting lbctl watch")
    watch = start_watch(d, config, launcher=launcher(GC_LAUNCHER, d / "gc.json") if args.gc else None)
    t = time.monotonic()
    try:
        watching(emu, watch)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: {(d / 'watch.log').read_text()[-2000:]}") from None
    log(f"lbctl watch holds its blocking queries {time.monotonic() - t:.1f}s after the start")
    return watch


def after_watch(args, d: Path, config: Path) -> tuple[dict, dict]:
    """Once lbctl watch stopped: its garbage collector's figures (``--gc``), and the steps of one apply."""
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
            log(f"the step timing failed: {traceback.format_exc()}")
    return gc_stats, steps


def report(args, d: Path, c: dict, idle: dict, seen: list, conns: dict, steps: dict, extra: dict) -> dict:
    """The detailed JSON object (printed first)."""
    results, churn_s = c["results"], c["end"] - c["start"]
    burst = max(10, args.services // 10)
    herd, calm = by_overlap(results, seen, burst)
    flip_path, other = requests_per_flip(results, seen, c["end"])
    lat = [r["live_ms"] for r in results if r["live_ms"] is not None]
    done = [r["done_ms"] for r in results if r["done_ms"] is not None]
    idle_cpu = idle.get("lbctl_watch_cpu_percent", 0.0) / 100 * churn_s
    idle_share = None  # the other requests per flip the idle rate predicts
    if idle.get("window_s"):
        idle_share = round(idle["requests"] / idle["window_s"] * churn_s / len(results), 2)
    watch_log = (d / "watch.log").read_text(errors="replace")
    return {
        "wait": args.wait, "min_wait": "0s", "min_query_interval": "100ms (default)",
        "instances": args.instances, "services_chosen_by": "name (source.consul.services)",
        "live_ms": summarize(lat), "round_done_ms": summarize(done),
        "timeouts": sum(r["live_ms"] is None for r in results),
        "live_ms_by_overlap": {"with_idle_burst": {"flips": len(herd), **summarize(herd)},
                               "without": {"flips": len(calm), **summarize(calm)},
                               "burst": f">= {burst} other requests while the flip propagated"},
        "cpu_ms_per_change": {"lbctl_watch_and_children": round(c["cpu_watch"] * 1000 / len(results), 1),
                              "lbctl_watch_above_idle": round((c["cpu_watch"] - idle_cpu) * 1000 / len(results), 1),
                              "haproxy_master_and_workers": round(c["cpu_haproxy"] * 1000 / len(results), 1)},
        "loadavg_1m": {"before_churn": c["load"][0], "after_churn": c["load"][1]},
        "idle": idle,
        "churn": {"seconds": round(churn_s, 1), "requests": c["requests"],
                  "flipped_service_requests_per_flip": round(statistics.fmean(flip_path), 2),
                  "flipped_service_requests_max": max(flip_path),
                  "other_requests_per_flip": round(statistics.fmean(other), 2),
                  "other_expected_from_idle_rate": idle_share},
        "watch_open_fds": c["watch_open_fds"], "path": args.path, "lbctl_rss_mb": c["rss"],
        "consul_connections": {**conns, "max_connections": args.max_connections or "lbctl's default"},
        "applies_logged": {"reload": watch_log.count("and haproxy reloaded"),
                           "runtime_api": watch_log.count("through the runtime API")},
        "watch_log_problems": [line for line in watch_log.splitlines() if " ERROR " in line or " WARNING " in line][:5],
        "apply_steps_ms": steps, **extra,
    }


def summary(args, detail: dict, c: dict, idle: dict, conns: dict) -> dict:
    """The summary JSON object (the last line)."""
    live, cpu = detail["live_ms"], detail["cpu_ms_per_change"]
    return {"services": args.services, "changes": args.changes, "wait": args.wait, "path": args.path,
            "p50_ms": live.get("p50"), "p99_ms": live.get("p99"), "max_ms": live.get("max"),
            "timeouts": detail["timeouts"], "idle_requests_per_min": idle.get("requests_per_min"),
            "queries_held": idle.get("queries_held"), "wait_s": duration(args.wait),
            "idle_bound_per_min": idle.get("bound_per_min"),
            "churn_requests_per_min": round(c["requests"] * 60 / (c["end"] - c["start"])),
            "peak_consul_connections": conns["peak"], "consul_429": conns["refused"],
            "cpu_ms_per_change": {"lbctl": cpu["lbctl_watch_and_children"],
                                  "haproxy": cpu["haproxy_master_and_workers"]},
            "lbctl_rss_mb": c["rss"].get("now")}


def run() -> None:
    args = parse_args()
    wait = duration(args.wait)
    started = time.monotonic()
    d = Path(tempfile.mkdtemp(prefix="lbctl-propagation-"))
    emu = haproxy = watch = httpd = spy = None
    try:
        log(f"emulator: {args.services} services x {args.instances} instances")
        emu = Emulator(args.services, args.instances, wait)
        httpd = serve_ok()
        config = write_setup(d, args, emu.port, httpd.server_address[1])
        t = time.monotonic()
        apply(d, config)
        log(f"lbctl apply wrote haproxy.cfg in {time.monotonic() - t:.1f}s; starting haproxy")
        haproxy = start_haproxy(d, d / "haproxy.cfg")
        watch = start_watching(emu, d, config, args)
        watch_fds = None
        with contextlib.suppress(OSError):
            watch_fds = len(os.listdir(f"/proc/{watch.pid}/fd"))
        flips = Flipper(args.services, args.instances, args.seed)
        warm_up(emu, d, args, flips)
        if args.gc in ("freeze", "off"):
            watch.send_signal(signal.SIGUSR1 if args.gc == "freeze" else signal.SIGUSR2)
            time.sleep(1)
        idle = idle_phase(emu, duration(args.idle) if args.idle else 6 * wait, wait, watch.pid)
        if idle:
            log(f"idle: {idle['requests']} requests in {idle['window_s']}s = {idle['requests_per_min']}/min")

        log(f"churn: {args.changes} flips")
        spy = None
        if args.profile:
            spy = start_profile(watch.pid, args.profile, 100, d / "py-spy.log")
            time.sleep(1.0)
        c = churn(emu, d, args, flips, watch, haproxy)
        c["watch_open_fds"] = watch_fds
        stop_profile(spy)
        seen = emu.call("log", c["start"], c["end"])
        conns = emu.call("conns")
        log("stopping lbctl watch")
        stop_watch(watch)
        gc_stats, steps = after_watch(args, d, config)
        extra = {**({"gc_mode": args.gc, "watch_gc_whole_run": gc_stats} if args.gc else {}),
                 "lbctl": code_version(), "cpus": os.cpu_count(), "total_s": round(time.monotonic() - started, 1)}
        detail = report(args, d, c, idle, seen, conns, steps, extra)
        print(json.dumps(detail, indent=1))
        result_line(summary(args, detail, c, idle, conns))
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
    procs.main(run)
