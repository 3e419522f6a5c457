"""Benchmark: HTTP traffic through HAProxy, nginx and Apache while ``lbctl apply`` changes pool membership.

For each target, in a temp dir on 127.0.0.1: three HTTP/1.1 backends, an lbctl.yml
and an inventory, and the load balancer itself, started here and always stopped
at the end (haproxy ``-W -S master.sock,level,admin``; nginx ``daemon off;``).
Two load processes (three, with the idle clients below) run *concurrently*
against the listener during one series of ``--applies`` real ``lbctl apply -c
lbctl.yml`` subprocesses, run one after the other, each rotating which 2 of the
3 backends are members:

* ``close``: a new connection per request (http.client, ``Connection: close``);
  any error or non-200 answer is a failed request.
* ``keepalive``: persistent connections.  When sending a request or reading its
  status line fails on a *reused* connection before any byte of the response
  arrived (RemoteDisconnected, ConnectionResetError, BrokenPipeError), the request
  is retried once on a fresh connection, as browsers and urllib3 do, and counted
  as a retry.  Anything else (a second failure, a timeout, a non-200) is a
  failed request.

A third, light load process holds ``--idle-clients`` keep-alive connections that
each sit idle ``--idle-seconds`` (8 s) between requests, like browser tabs: they pin
old generations and so exercise the bounds on old processes; they are reported
separately (``idle_keepalive``), with the same retry rule.

For HAProxy the bench sets ``runtime_api: false`` in lbctl.yml (when lbctl has
that key), so that every apply is a reload; ``--haproxy-runtime-api`` keeps
lbctl's default, where member changes go through the Runtime API instead.
Each apply's outcome ("reloaded" or "through the runtime API") is counted, and
so are the reloads the process itself saw (haproxy ``show proc``; nginx SIGHUPs).

Old processes are sampled every 0.05 s (haproxy: ``show proc`` on the master CLI,
"old workers"; nginx: children titled "worker process is shutting down").  The
bench config bounds them with ``hard-stop-after 5s`` and ``mworker-max-reloads 5``
(haproxy) and ``worker_shutdown_timeout 5s`` (nginx).  Apache (``--kind apache``, or in
``--targets``) runs ``apache2 -DFOREGROUND``; each apply is a graceful restart (SIGUSR1), its
old processes are server-status's ``Stopping`` children.

For Apache, ``--runtime-changes`` (200) member changes follow the applies under the same load:
each flips one member's weight or drain state through lbctl's deploy path as ``lbctl watch``
makes it, through balancer-manager (``runtime_series``); the report's ``runtime`` says how
long each took to be live (read back; p50 and p99), how many failed, and how many graceful
restarts happened meanwhile (0 expected).  With ``--kind apache`` the last line has
``runtime_p99_ms``.  The applies rotate members, which lbctl adds through balancer-manager
in spare slots (``growth``): the bench sets ``growth: 0`` so that every apply is a graceful
restart; ``--apache-runtime-members`` keeps lbctl's default, and the applies' member
adds and removals then go through balancer-manager (``applies_by``: runtime).

The harness is ``lbctl_testkit.bench`` (``reload_target``, ``load``, ``backends``, ``runtime_series``); everything it
starts is stopped at the end, on SIGTERM and Ctrl-C too.

Progress goes to stderr; the last stdout line is one JSON object::

    python bench/reload.py [--applies 100] [--targets haproxy,nginx] [--clients 4]
                           [--idle-clients 16] [--haproxy-runtime-api] [--templates DIR] [--runtime-changes 200]

With ``--kind K`` (one target) the last line is that target's object with ``kind`` first, and
``keepalive_retried`` (the keep-alive requests retried on a fresh connection).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import result_line
from lbctl_testkit.bench.backends import named_backends_main
from lbctl_testkit.bench.load import load_main
from lbctl_testkit.bench.procs import HOST, lbctl_argv, log
from lbctl_testkit.bench.reload_target import MAX_RELOADS, SHUTDOWN_SECONDS, SHUTDOWN_TIMEOUT, Sampler, Setup
from lbctl_testkit.bench.runtime_series import runtime_series


# --------------------------------------------------------------------------- one target

def start_loaders(kind: str, setup: Setup, args, ctx, stop) -> list[tuple[str, mp.Process, object]]:
    """The close, keep-alive and idle keep-alive load processes against ``setup``'s listener."""
    loaders = []
    modes = [("close", args.clients, 0.0), ("keepalive", args.clients, 0.0),
             ("idle", args.idle_clients, args.idle_seconds)]
    for mode, clients, pause in modes:
        if not clients:
            continue
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=load_main, name=f"load-{kind}-{mode}",
                        args=(mode, f"{kind} {mode}", setup.port, clients, args.max_seconds,
                              args.max_requests, stop, send, pause))
        p.start()
        send.close()
        loaders.append((mode, p, recv))
    return loaders


def apply_series(kind: str, setup: Setup, args, sampler: Sampler) -> dict:
    """``--applies`` applies, each rotating the members, with fresh GETs after each."""
    start = time.monotonic()
    durations, failures, how = [], [], Counter()
    stale = 0
    for i in range(1, args.applies + 1):
        setup.write_inventory(i)
        rc, out, seconds = setup.apply()
        durations.append(seconds)
        if rc != 0 or ": applied " not in out:
            failures.append(f"apply {i}: exit {rc}: {out}")
            log(f"{kind}: apply {i} FAILED (exit {rc}): {out}")
        else:
            how["reload" if "reloaded" in out or "restarted gracefully" in out else "runtime" if "runtime API" in out
                else "other"] += 1
        # Did membership change?  Fresh connections right after the apply must reach members
        # only (an error also counts as a non-member answer).
        members = {f"b{m}" for m in setup.members(i)}
        stale += sum(n for b, n in setup.answers(6).items() if b not in members)
        if i % 10 == 0 or i == args.applies:
            log(f"{kind}: {i}/{args.applies} applies, {len(failures)} failed, "
                f"{time.monotonic() - start:.1f}s, old processes max {sampler.max}")
    return {"durations": durations, "failures": failures, "how": how, "stale": stale,
            "seconds": time.monotonic() - start}


def first_apply(kind: str, setup: Setup) -> list[str]:
    """The first apply (before the load balancer starts); the shutdown bounds it rendered."""
    (setup.dir / "tmp").mkdir()
    setup.write_inventory(0)
    rc, out, _ = setup.apply()
    if rc != 0:
        raise RuntimeError(f"first lbctl apply failed ({rc}): {out}")
    wanted = (("option idle-close-on-response", f"hard-stop-after {SHUTDOWN_TIMEOUT}",
               f"mworker-max-reloads {MAX_RELOADS}") if kind == "haproxy"
              else ("ServerLimit", "MaxRequestWorkers") if kind == "apache"
              else (f"worker_shutdown_timeout {SHUTDOWN_TIMEOUT};",))
    rendered = [line.strip() for line in setup.live.read_text().splitlines() if line.strip().startswith(wanted)]
    log(f"{kind}: rendered {rendered}")
    return rendered


def bench_target(kind: str, backend_ports: list[int], args: argparse.Namespace, ctx) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"lbctl-bench-reload-{kind}-") as tmp:
        runtime = args.apache_runtime_members if kind == "apache" else args.haproxy_runtime_api
        setup = Setup(kind, Path(tmp), backend_ports, args.templates, runtime)
        rendered = first_apply(kind, setup)
        stop = ctx.Event()
        loaders: list[tuple[str, mp.Process, object]] = []
        sampler = Sampler(setup)
        try:
            setup.start()
            log(f"{kind}: listening on {HOST}:{setup.port}, members {setup.members(0)}, dir {tmp}")
            loaders = start_loaders(kind, setup, args, ctx, stop)
            sampler.start()
            time.sleep(args.warmup)
            series = apply_series(kind, setup, args, sampler)
            if kind == "apache" and args.runtime_changes:  # through balancer-manager, under the same load
                series["runtime"] = runtime_series(setup, args.runtime_changes)
            load_alive = all(p.is_alive() for _, p, _ in loaders)
            # Old processes right after the series and once the shutdown bound has passed,
            # with the load (idle clients included) still running.
            old_at_end = setup.old_processes()
            time.sleep(SHUTDOWN_SECONDS + 2)
            old_after = setup.old_processes()
            process_reloads = setup.process_reloads()
            sampler.stop.set()
            sampler.join()
            stop.set()
            results = {}
            for mode, p, recv in loaders:
                results[mode] = recv.recv() if recv.poll(60) else {"requests": 0, "failed": 0, "retries": 0,
                                                                   "failures": {"no result": 1}}
                p.join(10)
        finally:
            stop.set()
            sampler.stop.set()
            for _, p, _ in loaders:
                p.join(5)
                if p.is_alive():
                    p.kill()
            setup.stop()
    return report(args, results, series, {"process_reloads": process_reloads, "load_alive": load_alive,
                                          "old_at_end": old_at_end, "old_after": old_after,
                                          "sampler": sampler, "rendered": rendered})


def report(args, results: dict, series: dict, seen: dict) -> dict:
    """One target's JSON object."""
    close, ka = results["close"], results["keepalive"]
    idle = results.get("idle", {"requests": 0, "failed": 0, "retries": 0, "failures": {}})
    durations, failures, sampler = series["durations"], series["failures"], seen["sampler"]
    return {
        "applies": len(durations) - len(failures),
        "applies_failed": len(failures),
        "applies_by": dict(series["how"]),  # reload / runtime (haproxy Runtime API, no reload)
        "process_reloads": seen["process_reloads"],
        "requests": close["requests"],
        "failed": close["failed"],
        "keepalive_requests": ka["requests"],
        "keepalive_failed": ka["failed"],
        "keepalive_retries": ka["retries"],
        "idle_keepalive": {"clients": args.idle_clients, "idle_seconds": args.idle_seconds,
                           "requests": idle["requests"], "failed": idle["failed"], "retries": idle["retries"]},
        "failure_kinds": {"close": close["failures"], "keepalive": ka["failures"],
                          "idle_keepalive": idle["failures"]},
        "keepalive_retry_kinds": ka.get("retry_kinds", {}),
        "idle_keepalive_retry_kinds": idle.get("retry_kinds", {}),
        "load_seconds": {"close": close.get("seconds"), "keepalive": ka.get("seconds")},
        "load_covered_all_applies": seen["load_alive"],
        "apply_seconds": {"median": round(statistics.median(durations), 3), "max": round(max(durations), 3)},
        "series_seconds": round(series["seconds"], 1),
        "old_processes": {"max": sampler.max, "at_end": seen["old_at_end"],
                          f"after_{SHUTDOWN_SECONDS + 2:g}s": seen["old_after"], "samples": sampler.samples},
        "after_apply_checks": {"requests": 6 * len(durations), "non_member_answers": series["stale"]},
        "rendered": seen["rendered"],
        "apply_errors": failures[:5],
        **({"runtime": series["runtime"]} if "runtime" in series else {}),
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applies", type=int, default=100)
    parser.add_argument("--targets", default="haproxy,nginx")
    parser.add_argument("--kind", help="one target kind (haproxy, nginx or apache) instead of --targets; "
                                       "the last line is its object, with \"kind\"")
    parser.add_argument("--clients", type=int, default=4, help="client threads per mode (two modes run at once)")
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="the load generator stops by itself after this long")
    parser.add_argument("--max-requests", type=int, default=10_000_000, help="... or after this many requests per mode")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the first apply")
    parser.add_argument("--idle-clients", type=int, default=16,
                        help="keep-alive clients idle --idle-seconds between requests (hold old workers)")
    parser.add_argument("--idle-seconds", type=float, default=8.0,
                        help="longer than the 5 s shutdown bound, shorter than haproxy's 10 s keep-alive timeout")
    parser.add_argument("--haproxy-runtime-api", action="store_true",
                        help="leave lbctl's haproxy runtime_api on: member changes without reloads "
                             "(default: runtime_api false, so that every apply reloads)")
    parser.add_argument("--apache-runtime-members", action="store_true",
                        help="leave lbctl's apache growth (spare member slots) on: the applies' member rotations go "
                             "through balancer-manager (default: growth 0, so that every apply is a graceful restart)")
    parser.add_argument("--templates", help="lbctl.yml 'templates': override packaged templates (control runs)")
    parser.add_argument("--runtime-changes", type=int, default=200,
                        help="apache: weight and drain changes through balancer-manager after the applies (0: none)")
    args = parser.parse_args()
    targets = [args.kind] if args.kind else [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets:
        if t not in ("haproxy", "nginx", "apache"):
            parser.error(f"unknown target {t!r}")
    ctx = mp.get_context("spawn")
    stop_backends = ctx.Event()
    recv, send = ctx.Pipe(duplex=False)
    backends = ctx.Process(target=named_backends_main, args=(3, send, stop_backends), name="backends")
    backends.start()
    send.close()
    report: dict = {}
    began = time.monotonic()
    try:
        if not recv.poll(10):
            raise RuntimeError("the backends did not start")
        ports = recv.recv()
        log(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs); backends b0, b1, b2 on ports {ports}; "
            f"{args.clients} clients per mode; lbctl: {' '.join(lbctl_argv())}")
        for kind in targets:
            report[kind] = bench_target(kind, ports, args, ctx)
            log(f"{kind}: {json.dumps(report[kind])}")
    finally:
        stop_backends.set()
        backends.join(5)
        if backends.is_alive():
            backends.kill()
    log(f"total {time.monotonic() - began:.0f}s; load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    if args.kind:
        one = report[args.kind]
        runtime = one.get("runtime") or {}
        result_line({"kind": args.kind, **one, "keepalive_retried": one["keepalive_retries"],
                     **({"runtime_p99_ms": runtime.get("p99_ms")} if runtime else {})})
    else:
        result_line(report)



if __name__ == "__main__":
    procs.main(run)
