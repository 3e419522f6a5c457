"""Benchmark: services that declare their own routes (``Meta lb-route``), through a real
``lbctl watch`` and a live HAProxy.

Everything runs on 127.0.0.1 in a temp dir and is always stopped at the end (the harness
is ``lbctl_testkit.bench``):

* the Consul emulator in a child process of its own, its connection cap on (a real
  agent's 200 per client), with ``--services`` services of one instance each, every
  one declaring one route under one wildcard pattern
  (``route-0001.apps.bench.test``) and tagged ``routed``;
* two backends (``b0``: the listener's default pool, which the probes ask; ``b1``:
  every service's instance), so a request shows whether its route served it;
* HAProxy in master-worker mode on the config ``lbctl apply`` wrote, and
  ``lbctl watch`` as a real process, with ``watch.route_grace: 0s`` (a route goes with
  its service's last instance) and ``source.consul.tag: routed``.

Phases, after a warm-up registration:

1. ``--new`` services register, one at a time: the time from the registration (taken
   in the emulator's process right before it, CLOCK_MONOTONIC being shared) to the
   first request with that Host header answered by ``b1`` through HAProxy (polled
   every ``--poll`` ms, each on a fresh connection) is the service's latency; the
   next one registers ``--gap`` ms after that.  HAProxy's reloads (``show proc``)
   during the phase, per new route, are ``reloads_per_route``;
2. ``--new`` of the first services deregister, one at a time, each until a request
   for its host is no longer answered by ``b1`` (the default pool takes it again).

During both phases ``--clients`` threads ask for routes that exist throughout (those
of services that neither come nor go), in turn, on fresh connections, at most
``--rate`` requests a second each: an answer other than 200 from ``b1``, or no
answer, is a failed request.

Progress goes to stderr; a detailed JSON object, then the summary as the last line
(``services``, ``new_routes``, ``p50_ms``, ``p99_ms``, ``failed``, ``reloads_per_route``)::

    python bench/routes.py [--services 1000] [--new 200]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path

import yaml

from lbctl.errors import CommandError
from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import result_line, summarize
from lbctl_testkit.bench.backends import named_backends_main
from lbctl_testkit.bench.consul import Emulator, watching
from lbctl_testkit.bench.haproxy import reloads, start_haproxy
from lbctl_testkit.bench.procs import HOST, code_version, loadavg, log, stop_group
from lbctl_testkit.bench.watch import apply, lbctl_config, start_watch, stop_watch, write_config, write_inventory
from lbctl_testkit.support import free_port
from lbctl_testkit.support.procs import http_get

PATTERN = "*.apps.bench.test"
TAG = "routed"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000, help="services with a route at the start")
    parser.add_argument("--new", type=int, default=200, help="services that register, then services that go")
    parser.add_argument("--wait", default="10s", help="source.consul.wait")
    parser.add_argument("--poll", type=float, default=5, help="ms between requests for a new route")
    parser.add_argument("--gap", type=float, default=50, help="ms between a route serving and the next change")
    parser.add_argument("--timeout", type=float, default=30, help="s a change may take before it counts as failed")
    parser.add_argument("--clients", type=int, default=2, help="threads asking for existing routes")
    parser.add_argument("--rate", type=float, default=20, help="requests a second per client, at most")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed on stderr)")
    args = parser.parse_args()
    if args.new * 2 > args.services:
        parser.error("--new may be at most half of --services (the other half keeps its routes)")
    return args


def name(i: int) -> str:
    return f"route-{i:04d}"


def host(i: int) -> str:
    return f"{name(i)}.apps.bench.test"


def registration(i: int, port: int) -> tuple:
    """The emulator call that registers service i (one instance on backend b1, passing)."""
    return ("add_service", (name(i),), {"service_id": f"{name(i)}-i0", "address": HOST, "port": port,
                                        "tags": [TAG], "meta": {"lb-route": host(i)}, "status": "passing"})


def served_by(port: int, i: int) -> str:
    """Which backend answered a request for service i's host (``status N``, or ``error``)."""
    try:
        r = http_get(f"http://{HOST}:{port}/", timeout=5.0, headers={"Host": host(i)})
    except OSError:
        return "error"
    return r.headers.get("x-backend", "") if r.status == 200 else f"status {r.status}"


def reload_count(d: Path) -> int:
    """HAProxy's reloads so far, waiting out a reload in progress (its master re-executes)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return reloads(d)
        except (CommandError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def until(predicate, timeout: float, poll: float) -> float | None:
    """Seconds until ``predicate()`` holds (None: not within ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic()
        time.sleep(poll)
    return None


def write_setup(d: Path, consul_port: int, ports: list[int]) -> tuple[Path, int]:
    """inventory.yml (listener ``web`` accepting PATTERN, default pool on b0) and lbctl.yml."""
    listen = free_port()
    write_inventory(d, listen, ports[0])
    inventory = yaml.safe_load((d / "inventory.yml").read_text())
    inventory["listeners"]["web"]["accept_routes"] = [PATTERN]
    (d / "inventory.yml").write_text(yaml.safe_dump(inventory))
    config = lbctl_config(d, consul_port, [], "10s", listen)
    config["source"]["consul"].pop("services")
    config["source"]["consul"]["tag"] = TAG
    config["watch"]["route_grace"] = "0s"
    return write_config(d / "lbctl.yml", config), listen


class Existing:
    """Threads asking for routes that stay, counting the requests that fail."""

    def __init__(self, port: int, services: list[int], clients: int, rate: float) -> None:
        self.port, self.services, self.rate = port, services, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = self.failed = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(clients)]

    def client(self, n: int) -> None:
        k = n
        while not self.stop.is_set():
            got = served_by(self.port, self.services[k % len(self.services)])
            with self.lock:
                self.sent += 1
                if got != "b1":
                    self.failed += 1
                    if len(self.failures) < 5:
                        self.failures.append(f"{host(self.services[k % len(self.services)])}: {got}")
            k += len(self.threads)
            self.stop.wait(1 / self.rate)

    def __enter__(self) -> "Existing":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def changes(emu: Emulator, args, listen: int, ports: list[int], d: Path) -> dict:
    """Phase 1 (registrations, measured to the first request served) and phase 2 (deregistrations)."""
    out: dict = {"register_ms": [], "deregister_ms": [], "timeouts": 0}
    for phase, indexes in (("register", range(args.services + 1, args.services + 1 + args.new)),
                           ("deregister", range(args.new))):
        before = reload_count(d)
        log(f"{phase}: {args.new} services, one at a time")
        for n, i in enumerate(indexes):
            call = registration(i, ports[1]) if phase == "register" else ("remove_service", (f"{name(i)}-i0",), {})
            t0 = emu.call("call", [call])
            want = (lambda i=i: served_by(listen, i) == "b1") if phase == "register" else \
                (lambda i=i: served_by(listen, i) == "b0")
            done = until(want, args.timeout, args.poll / 1000)
            if done is None:
                out["timeouts"] += 1
                log(f"  {host(i)}: no change within {args.timeout:g}s")
            else:
                out[f"{phase}_ms"].append((done - t0) * 1000)
            if n % 20 == 19:
                log(f"  {n + 1} done; p50 {summarize(out[f'{phase}_ms']).get('p50')} ms")
            time.sleep(args.gap / 1000)
        out[f"{phase}_reloads"] = reload_count(d) - before
    return out


def run() -> None:
    args = parse_args()
    started = time.monotonic()
    d = Path(tempfile.mkdtemp(prefix="lbctl-routes-"))
    ctx = mp.get_context("spawn")
    stop_backends = ctx.Event()
    recv, send = ctx.Pipe(duplex=False)
    backends = ctx.Process(target=named_backends_main, args=(2, send, stop_backends), name="backends")
    emu = haproxy = watch = None
    try:
        backends.start()
        send.close()
        if not recv.poll(30):
            raise RuntimeError("the backends did not start")
        ports = recv.recv()
        emu = Emulator(0, 0, procs.duration(args.wait))
        log(f"registering {args.services} services, one route each under {PATTERN}")
        emu.call("call", [registration(i, ports[1]) for i in range(args.services)])
        config, listen = write_setup(d, emu.port, ports)
        apply(d, config)
        haproxy = start_haproxy(d, d / "haproxy.cfg")
        watch = start_watch(d, config)
        watching(emu, watch)
        log("warm-up: one more service")
        emu.call("call", [registration(args.services, ports[1])])
        if until(lambda: served_by(listen, args.services) == "b1", 120, 0.05) is None:
            raise RuntimeError(f"the warm-up route never served: {(d / 'watch.log').read_text()[-2000:]}")
        load_before = loadavg()
        with Existing(listen, list(range(args.new, args.services)), args.clients, args.rate) as existing:
            c = changes(emu, args, listen, ports, d)
        conns = emu.call("conns")
        stop_watch(watch)
        watch_log = (d / "watch.log").read_text(errors="replace")
        detail = {
            "register_ms": summarize(c["register_ms"]), "deregister_ms": summarize(c["deregister_ms"]),
            "timeouts": c["timeouts"], "reloads": {"register": c["register_reloads"],
                                                   "deregister": c["deregister_reloads"]},
            "existing_requests": {"sent": existing.sent, "failed": existing.failed, "first": existing.failures},
            "consul_connections": conns, "loadavg_1m": {"before": load_before, "after": loadavg()},
            "watch_log_problems": [line for line in watch_log.splitlines() if " ERROR " in line][:5],
            "lbctl": code_version(), "total_s": round(time.monotonic() - started, 1),
        }
        print(json.dumps(detail, indent=1))
        result_line({"services": args.services, "new_routes": args.new,
                     "p50_ms": detail["register_ms"].get("p50"), "p99_ms": detail["register_ms"].get("p99"),
                     "failed": existing.failed + c["timeouts"],
                     "reloads_per_route": round(c["register_reloads"] / args.new, 2)})
    finally:
        stop_group(watch)
        stop_group(haproxy)
        if emu is not None:
            emu.stop()
        stop_backends.set()
        backends.join(5)
        if backends.is_alive():
            backends.kill()
        procs.keep_or_remove(d, args.keep)


if __name__ == "__main__":
    procs.main(run)
