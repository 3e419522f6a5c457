"""The Consul emulator for the benchmarks, in a child process of its own (its request threads do
not share the bench's GIL), with every request time-stamped and its counters read over a pipe."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter

from lbctl_testkit.bench.accounting import cpu_seconds
from lbctl_testkit.bench.procs import log, wait_for


def service_name(i: int) -> str:
    """The i-th service (``svc-0000`` ...)."""
    return f"svc-{i:04d}"


def instance_id(i: int, k: int) -> str:
    """Instance k of service i."""
    return f"{service_name(i)}-i{k}"


def instance_address(i: int, k: int) -> str:
    """An unused 10.x address for instance k of service i."""
    return f"10.{i // 250}.{i % 250}.{k + 1}"


def _answer(emu, seen: list, op: str, args: tuple):
    if op == "flip":
        sid, status = args
        t = time.monotonic()  # right before the change
        emu.set_service_health(sid, status)
        return t
    if op == "call":  # [(method, args, kwargs), ...] in one transaction
        calls, = args
        t = time.monotonic()  # right before the change
        try:
            with emu.transaction():
                for name, a, kw in calls:
                    getattr(emu, name)(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - the parent raises it
            return exc
        return t
    if op == "count":
        return emu.request_count(*args)
    if op == "reset":
        return emu.reset_requests()
    if op == "reset_conns":  # the peak starts again from the connections open now
        return emu.reset_connection_stats()
    if op == "blocking":
        return emu.blocking_queries
    if op == "conns":  # the per-client connection cap's counters (on, at Consul's default 200)
        return {"peak": emu.peak_connections(), "refused": emu.refused()}
    if op == "log":
        since, until = args
        return [(t, p) for t, p in list(seen) if since <= t < until]
    return ValueError(op)


def _emulator_main(conn, services: int, instances: int, wait: float) -> None:
    """Serve the emulator and answer commands on ``conn`` until "stop" (or the parent goes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
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
    # 50,000 instances and their checks live as long as the emulator: keep them out of the
    # collector's full passes, which otherwise stop every thread of this child for tens of ms
    gc.collect()
    gc.freeze()
    # A Go agent answers a small query on one core while it encodes 15 MB of checks on
    # another; this child's threads share one GIL, handed over every 5 ms by default, so a
    # small answer waited behind the big one's Python work. Hand it over more often.
    sys.setswitchinterval(0.0005)
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
            conn.send(_answer(emu, seen, op, tuple(args)))
    finally:
        emu.stop()


class Emulator:
    """The emulator's child process.  ``call(op, ...)``: flip (sid, status) and call ([(method,
    args, kwargs)], one transaction) return the CLOCK_MONOTONIC time right before the change;
    count, reset, blocking (queries held), conns (peak, refused), reset_conns, log (since, until)."""

    def __init__(self, services: int, instances: int, wait: float) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_emulator_main, args=(child, services, instances, wait), daemon=True)
        self.proc.start()
        if not self.conn.poll(120):
            raise RuntimeError("the emulator did not start")
        self.port = self.conn.recv()
        self.lock = threading.Lock()

    def call(self, *msg):
        """Send one command and return its answer (an exception is raised here)."""
        with self.lock:
            self.conn.send(msg)
            if not self.conn.poll(60):
                raise RuntimeError(f"the emulator does not answer {msg[0]}")
            out = self.conn.recv()
        if isinstance(out, Exception):
            raise out
        return out

    def stop(self) -> None:
        """Stop the child (kill it if it does not answer)."""
        with contextlib.suppress(Exception):
            self.call("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def watching(emu: Emulator, watch: subprocess.Popen, what: str = "lbctl watch") -> None:
    """Until lbctl watch holds its blocking queries (two: the catalog and the checks), or exits."""
    wait_for(lambda: watch.poll() is not None or emu.call("blocking") >= 2, 120, f"{what} to block on Consul")
    if watch.poll() is not None:
        raise RuntimeError(f"{what} exited")


def idle_phase(emu: Emulator, window: float, wait: float, watch_pid: int) -> dict:
    """``window`` seconds with no change: the requests lbctl made, the queries it held and their
    bound, the mean interval between two requests of one query, the busiest and quietest
    second, lbctl's CPU.  {} when the window is 0."""
    if window <= 0:
        return {}
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
            "quietest_second": min((bins.get(i, 0) for i in range(int(end - start))), default=0)}
