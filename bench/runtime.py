"""Benchmark (issue #6): membership changes from Consul through the Runtime API against the
reload path, in the same run, under continuous loopback load.

Built on the bench harness ``lbctl_testkit.bench`` (as bench/propagation.py): the Consul emulator
in a child process that time-stamps every change, HAProxy in master-worker mode, a real
``lbctl watch``; all of it stopped at the end, on SIGTERM and Ctrl-C too.

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
  ``lbctl watch`` (log: ``watch-<phase>.log``), makes ``--warmup`` uncounted changes (by
  default one on each real service, so that each counted one is a service's next change), then
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
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import cpu_seconds, result_line, rss_mb, summarize
from lbctl_testkit.bench.backends import ok_backends
from lbctl_testkit.bench.changes import Changes, one_change, series, trace_legs
from lbctl_testkit.bench.consul import Emulator, idle_phase, service_name, watching
from lbctl_testkit.bench.haproxy import reloads, start_haproxy
from lbctl_testkit.bench.load import paced_load_main
from lbctl_testkit.bench.procs import (code_version, duration, loadavg, log, start_profile, stop_group,
                                       stop_profile, wait_for)
from lbctl_testkit.bench.steps import consul_leg, runtime_steps
from lbctl_testkit.bench.watch import (TRACE_LAUNCHER, apply, first_timeout, launcher, lbctl_config, start_watch,
                                       stop_watch, write_config, write_inventory)
from lbctl_testkit.support import free_port


def parse_args() -> argparse.Namespace:
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
    parser.add_argument("--warmup", type=int, default=None,
                        help="uncounted changes first (default: one per real service and one more, so that every "
                             "counted change is on a service that changed before, as in a deploy; the first change "
                             "of a service is measured with --real above the hot queries, docs/performance.md)")
    parser.add_argument("--gap", type=float, default=50, help="ms between a round's end and the next change")
    parser.add_argument("--poll", type=float, default=1, help="ms between stats-socket polls")
    parser.add_argument("--timeout", type=float, default=15, help="s a change may take before it counts as a timeout")
    parser.add_argument("--steps", type=int, default=20, help="runs of the runtime-path step timing (0: skip)")
    parser.add_argument("--phases", default="runtime,reload", help="which phases, in order")
    parser.add_argument("--profile", default="",
                        help="py-spy record the first phase's lbctl watch into this file (raw stacks, 500 Hz)")
    parser.add_argument("--trace", action="store_true",
                        help="diagnostic: time-stamp lbctl's steps in the runtime phase's watch "
                             "(see lbctl_testkit.bench.watch.TRACE_LAUNCHER)")
    parser.add_argument("--idle", default="",
                        help="idle window before each phase's counted changes (default: 6 wait periods; 0: none)")
    parser.add_argument("--max-connections", type=int, default=0,
                        help="source.consul.max_connections (default: lbctl's default)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed on stderr)")
    args = parser.parse_args()
    if args.instances > args.backends or args.real > args.services:
        sys.exit("--backends must be >= --instances and --real <= --services")
    return args


def write_setup(d: Path, args, consul_port: int, listen_port: int, probe_port: int) -> dict[str, Path]:
    """inventory.yml (a route per real service) and lbctl-<phase>.yml for each phase."""
    routes = [{"path": f"/r{r}/", "pool": service_name(r)} for r in range(args.real)]
    write_inventory(d, listen_port, probe_port, routes)
    services = [service_name(i) for i in range(args.services)]
    return {phase: write_config(d / f"lbctl-{phase}.yml",
                                lbctl_config(d, consul_port, services, args.wait, listen_port, args.max_connections,
                                             runtime_api=phase == "runtime"))
            for phase in ("runtime", "reload")}


def counted(phase: str, d: Path, args, emu: Emulator, changes: Changes, counters, watch, haproxy) -> tuple[list, dict]:
    """The warm-up, the idle window and the counted changes of one phase, with its window's counters."""
    stats, record = d / "stats.sock", d / "state" / "edge" / "last-apply.json"
    # The first warm-up change comes while the watch reads every service for the first time
    # (a first read is not a change): one more than the real services.
    for n in range(args.real + 1 if args.warmup is None else args.warmup):
        r = one_change(emu, stats, record, changes.next(), args.poll / 1000,
                       first_timeout(args.services) if n == 0 else 60)
        if r["live_ms"] is None:
            raise RuntimeError(f"{phase}: warm-up change never went live: {r}")
        log(f"{phase}: warm-up {r['kind']} on {r['backend']}: live after {r['live_ms']:.0f} ms")
        time.sleep(args.gap / 1000)
    spy = None
    if args.profile and phase == args.phases.split(",")[0]:
        spy = start_profile(watch.pid, args.profile, 500, Path(os.devnull))
    wait = duration(args.wait)
    idle = idle_phase(emu, duration(args.idle) if args.idle else 6 * wait, wait, watch.pid)
    if idle:
        log(f"{phase}: idle: {idle['requests']} requests in {idle['window_s']}s = {idle['requests_per_min']}/min")
    time.sleep(1)
    ok0, failed0 = counters[0], counters[1]
    reloads0, load0 = reloads(d), loadavg()
    cpu_w, cpu_h = cpu_seconds(watch.pid), cpu_seconds(haproxy.pid)
    start = time.monotonic()
    results = series(lambda: one_change(emu, stats, record, changes.next(), args.poll / 1000, args.timeout),
                     args.changes, args.gap / 1000, 50, f"{phase}: ")
    end = time.monotonic()
    stop_profile(spy)
    time.sleep(0.5)  # requests in flight at the end still count
    cpu_w, cpu_h = cpu_seconds(watch.pid) - cpu_w, cpu_seconds(haproxy.pid) - cpu_h
    return results, {"reloads": reloads(d) - reloads0, "ok": counters[0] - ok0, "failed": counters[1] - failed0,
                     "idle": idle, "lbctl_rss_mb": rss_mb(watch.pid), "consul_connections": emu.call("conns"),
                     "loadavg_1m": {"before": load0, "after": loadavg()}, "window": (start, end),
                     "cpu": (cpu_w, cpu_h)}


def run_phase(phase: str, d: Path, config: Path, args, emu: Emulator, changes: Changes, counters, haproxy) -> dict:
    # The emulator counts a stopped watch's parked queries until their wait ends (the step
    # timing's one-shot reads, too): let them end, so that the phase counts its own.
    wait_for(lambda: emu.call("blocking") == 0, duration(args.wait) * 1.1 + 5, "the last watch's queries to end")
    emu.call("reset_conns")
    log(f"{phase}: starting lbctl watch -c {config.name}")
    trace = args.trace and phase == "runtime"
    watch = start_watch(d, config, f"watch-{phase}.log", launcher(TRACE_LAUNCHER, d / "trace.log") if trace else None)
    try:
        # Both phases render the same file (servers named after members, no spare slots), so the
        # watch starts with nothing to apply: wait until it holds its blocking queries.
        watching(emu, watch)
        results, out = counted(phase, d, args, emu, changes, counters, watch, haproxy)
    finally:
        stop_watch(watch)
    cpu_w, cpu_h = out.pop("cpu")
    lat = [r["live_ms"] for r in results if r["live_ms"] is not None]
    by_kind = {}
    for r in results:
        by_kind.setdefault(r["kind"], []).append(r["live_ms"])
    if trace:
        out["trace_legs_ms"] = trace_legs(d / "trace.log", results)
    text = (d / f"watch-{phase}.log").read_text(errors="replace")
    seconds = out["window"][1] - out["window"][0]
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


def all_phases(phases: list[str], d: Path, configs: dict, args, emu: Emulator, changes: Changes, counters,
               haproxy) -> tuple[dict, dict]:
    """Each phase in turn; after the runtime phase, the steps of one runtime-path apply."""
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
                log(f"the step timing failed: {traceback.format_exc()}")
    return results, steps


def report(args, d: Path, results: dict, steps: dict, consul: dict, counters, started: float) -> dict:
    """The detailed JSON object (printed first), with each phase's first failed requests."""
    failures = []
    with contextlib.suppress(OSError):
        failures = (d / "failed-requests.log").read_text().splitlines()
    for r in results.values():
        start, end = r.pop("window")
        r["failed_samples"] = [line for line in failures if start <= float(line.split()[0]) < end + 0.5][:5]
    return {"phases": results, "runtime_steps_ms": steps, "consul_leg_ms": consul,
            "load": {"rate": args.rate, "threads": args.load_threads, "ok": counters[0],
                     "failed": counters[1], "failed_outside_windows": counters[1] - sum(
                         r["failed"] for r in results.values())},
            "services": args.services, "instances": args.instances, "real": args.real,
            "backends": args.backends, "wait": args.wait, "min_wait": "0s", "poll_ms": args.poll,
            "lbctl": code_version(), "cpus": os.cpu_count(), "total_s": round(time.monotonic() - started, 1)}


def summary(args, results: dict) -> dict:
    """The summary JSON object (the last line)."""
    rt, rl = results.get("runtime", {}), results.get("reload", {})
    return {"services": args.services, "changes": args.changes,
            "runtime_p50_ms": rt.get("live_ms", {}).get("p50"), "runtime_p99_ms": rt.get("live_ms", {}).get("p99"),
            "reload_p50_ms": rl.get("live_ms", {}).get("p50"), "reload_p99_ms": rl.get("live_ms", {}).get("p99"),
            "runtime_reloads": rt.get("reloads"), "reload_reloads": rl.get("reloads"),
            "timeouts": sum(r["timeouts"] for r in results.values()),
            "failed": sum(r["failed"] for r in results.values()),
            "requests": sum(r["ok"] + r["failed"] for r in results.values()),
            "peak_consul_connections": max(r["consul_connections"]["peak"] for r in results.values()),
            "consul_429": sum(r["consul_connections"]["refused"] for r in results.values()),
            "cpu_ms_per_change": {p: {"lbctl": r["cpu_ms_per_change"]["lbctl_watch_and_children"],
                                      "haproxy": r["cpu_ms_per_change"]["haproxy"]} for p, r in results.items()},
            "lbctl_rss_mb": {p: r["lbctl_rss_mb"].get("now") for p, r in results.items()},
            "idle_requests_per_min": {p: r["idle"].get("requests_per_min") for p, r in results.items()},
            "queries_held": {p: r["idle"].get("queries_held") for p, r in results.items()},
            "wait_s": duration(args.wait),
            "idle_bound_per_min": {p: r["idle"].get("bound_per_min") for p, r in results.items()}}


def run() -> None:
    args = parse_args()
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
        backends, ports = ok_backends(args.backends)
        changes = Changes(args.real, args.instances, ports, args.seed)
        emu.call("call", changes.initial())
        listen = free_port()
        configs = write_setup(d, args, emu.port, listen, ports[0])
        t = time.monotonic()
        apply(d, configs[phases[0]])
        log(f"lbctl apply wrote haproxy.cfg in {time.monotonic() - t:.1f}s; starting haproxy and the load")
        haproxy = start_haproxy(d, d / "haproxy.cfg")
        load = ctx.Process(target=paced_load_main, daemon=True,
                           args=(listen, [f"/r{r}/x" for r in range(args.real)], args.load_threads, args.rate,
                                 args.load_max, counters, stop_load, str(d / "failed-requests.log")))
        load.start()
        time.sleep(2)
        if counters[0] == 0:
            raise RuntimeError(f"no request succeeded through haproxy: {counters[1]} failed")
        results, steps = all_phases(phases, d, configs, args, emu, changes, counters, haproxy)
        stop_load.set()
        load.join(10)
        consul = consul_leg(emu, 20, args.services - 1) if args.steps else {}
        print(json.dumps(report(args, d, results, steps, consul, counters, started), indent=1))
        result_line(summary(args, results))
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
    procs.main(run)
