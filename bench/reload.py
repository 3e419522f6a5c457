"""Benchmark: HTTP traffic through HAProxy and nginx while ``lbctl apply`` changes pool membership.

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
(haproxy) and ``worker_shutdown_timeout 5s`` (nginx).

Progress goes to stderr; the last stdout line is one JSON object::

    python bench/reload.py [--applies 100] [--targets haproxy,nginx] [--clients 4]
                           [--idle-clients 16] [--haproxy-runtime-api] [--templates DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from lbctl import config as lbctl_config
from lbctl.errors import CommandError
from lbctl.targets.nginx import ctl as nginx_ctl
from lbctl.targets.haproxy.ctl import MasterCLI

HOST = "127.0.0.1"
SHUTDOWN_TIMEOUT = "5s"  # hard-stop-after (haproxy) and worker_shutdown_timeout (nginx)
SHUTDOWN_SECONDS = 5.0
MAX_RELOADS = 5  # mworker-max-reloads (haproxy)
SAMPLE_EVERY = 0.05
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- backends

def backend_main(count: int, ports_out, stop) -> None:
    """Serve ``count`` HTTP/1.1 keep-alive backends (asyncio) until ``stop`` is set.

    Every request gets 200, body ``b<i>`` and ``X-Backend: b<i>`` (``/slow?ms=N``: after
    N ms; used by ad-hoc experiments, not by the bench itself); a connection
    stays open unless the request asks to close it (or is HTTP/1.0 without keep-alive).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def serve() -> None:
        servers = []
        for i in range(count):
            name = f"b{i}".encode()

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name=name) -> None:
                try:
                    while True:
                        head = await reader.readuntil(b"\r\n\r\n")
                        lines = head.decode("latin-1").split("\r\n")
                        version = lines[0].rsplit(" ", 1)[-1].upper()
                        path = lines[0].split(" ")[1].encode() if lines[0].count(" ") >= 2 else b"/"
                        headers = {}
                        for line in lines[1:]:
                            k, _, v = line.partition(":")
                            headers[k.strip().lower()] = v.strip().lower()
                        length = int(headers.get("content-length") or 0)
                        if length:
                            await reader.readexactly(length)
                        if path.startswith(b"/slow?ms="):  # /slow?ms=N answers after N ms
                            await asyncio.sleep(int(path[9:] or 0) / 1000)
                        conn = headers.get("connection", "")
                        keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: " + name
                                     + b"\r\nContent-Length: " + str(len(name)).encode()
                                     + (b"\r\nConnection: keep-alive" if keep else b"\r\nConnection: close")
                                     + b"\r\n\r\n" + name)
                        await writer.drain()
                        if not keep:
                            break
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
                    pass
                finally:
                    writer.close()

            servers.append(await asyncio.start_server(handle, HOST, 0, backlog=1024, reuse_address=True))
        ports_out.send([s.sockets[0].getsockname()[1] for s in servers])
        ports_out.close()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for s in servers:
            s.close()

    asyncio.run(serve())


# --------------------------------------------------------------------------- load

class _CountingReader(io.RawIOBase):
    """The socket's own raw reader (which keeps the socket open until the response
    is closed), counting the bytes received on its connection."""

    def __init__(self, sock: socket.socket, conn: "KeepAliveConnection") -> None:
        self._raw, self._conn = sock.makefile("rb", buffering=0), conn

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int | None:
        n = self._raw.readinto(b)
        if n:
            self._conn.received += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _CountingSocket:
    def __init__(self, sock: socket.socket, conn: "KeepAliveConnection") -> None:
        self._sock, self._conn = sock, conn

    def makefile(self, mode: str, *args, **kwargs):
        return io.BufferedReader(_CountingReader(self._sock, self._conn))


class KeepAliveConnection(http.client.HTTPConnection):
    """An HTTPConnection that knows how many response bytes arrived since ``received = 0``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        conn = self

        class Response(http.client.HTTPResponse):
            def __init__(self, sock, *a, **kw) -> None:
                super().__init__(_CountingSocket(sock, conn), *a, **kw)

        self.response_class = Response


RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def _kind(exc: BaseException, phase: str) -> str:
    return f"{phase}: {type(exc).__name__}"


def close_client(port: int, stop, deadline: float, budget: list[int], stats: dict, lock: threading.Lock) -> None:
    """A new connection per request, ``Connection: close``."""
    while not stop.is_set() and time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        failure = None
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failure = f"status {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            failure = _kind(exc, "request")
        finally:
            conn.close()
        with lock:
            stats["requests"] += 1
            if failure:
                stats["failed"] += 1
                stats["failures"][failure] += 1


def keepalive_client(port: int, stop, deadline: float, budget: list[int], stats: dict, lock: threading.Lock,
                     pause: float = 0.0, delay: float = 0.0) -> None:
    """Persistent connections; one retry, on a fresh connection, of a request whose
    reused connection failed before any response byte arrived.

    ``pause``: idle seconds between requests (an idle keep-alive client, as a
    browser tab); ``delay``: seconds before the first request.
    """
    conn = KeepAliveConnection(HOST, port, timeout=10)
    stop.wait(delay)
    first = True
    while not stop.is_set() and time.monotonic() < deadline:
        if pause and not first and stop.wait(pause):
            break
        first = False
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        failure, retried = None, False
        for attempt in (0, 1):
            reused = conn.sock is not None  # http.client opens a fresh one when it is None
            conn.received = 0
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()  # a response with Connection: close closes conn.sock itself
                failure = None if resp.status == 200 else f"status {resp.status}"
                break
            except RETRYABLE as exc:
                nothing = conn.received == 0
                conn.close()
                if attempt == 0 and reused and nothing:
                    retried = True
                    with lock:
                        stats["retry_kinds"][type(exc).__name__] += 1
                    continue
                why = "retry failed" if attempt else ("fresh connection" if not reused else "after response bytes")
                failure = _kind(exc, why)
                break
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                failure = _kind(exc, "retry" if attempt else "request")
                break
        with lock:
            stats["requests"] += 1
            stats["retries"] += retried
            if failure:
                stats["failed"] += 1
                stats["failures"][failure] += 1
    conn.close()


def load_main(mode: str, label: str, port: int, clients: int, max_seconds: float, max_requests: int,
              stop, out, pause: float = 0.0) -> None:
    """One load process: ``clients`` threads of ``mode`` until ``stop``, ``max_seconds`` or ``max_requests``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = {"requests": 0, "failed": 0, "retries": 0, "failures": Counter(), "retry_kinds": Counter()}
    lock, budget = threading.Lock(), [max_requests]
    start = time.monotonic()
    deadline = start + max_seconds
    if mode == "close":
        work = [(port, stop, deadline, budget, stats, lock) for _ in range(clients)]
    else:
        work = [(port, stop, deadline, budget, stats, lock, pause, pause * i / clients) for i in range(clients)]
    threads = [threading.Thread(target=close_client if mode == "close" else keepalive_client, args=a, daemon=True)
               for a in work]
    for t in threads:
        t.start()
    next_report = start + 10
    while any(t.is_alive() for t in threads):
        time.sleep(0.1)
        if time.monotonic() >= next_report:
            next_report += 10
            with lock:
                log(f"{label}: {stats['requests']} requests, {stats['failed']} failed, {stats['retries']} retries")
    elapsed = time.monotonic() - start
    out.send({"requests": stats["requests"], "failed": stats["failed"], "retries": stats["retries"],
              "failures": dict(stats["failures"]), "retry_kinds": dict(stats["retry_kinds"]),
              "seconds": round(elapsed, 1),
              "stopped_by": "signal" if stop.is_set() else ("time" if time.monotonic() >= deadline else "count")})
    out.close()


# --------------------------------------------------------------------------- set-up

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=SBIN)
    if not found:
        sys.exit(f"{name} is not installed")
    return found


def lbctl_argv() -> list[str]:
    """The installed ``lbctl`` script (beside this interpreter first, skipping pyenv's shim), else ``-m lbctl``."""
    here = Path(sys.executable).parent / "lbctl"
    if here.exists():
        return [str(here)]
    found = shutil.which("lbctl")
    return [found] if found else [sys.executable, "-m", "lbctl"]


class Setup:
    """lbctl.yml + inventory + the running load balancer for one target kind in ``directory``."""

    def __init__(self, kind: str, directory: Path, backend_ports: list[int], templates: str | None = None,
                 runtime_api: bool = False) -> None:
        self.kind, self.dir, self.backends = kind, directory, backend_ports
        self.port = free_port()
        self.config = directory / "lbctl.yml"
        self.inventory_path = directory / "inventory.yml"
        self.live = directory / ("haproxy.cfg" if kind == "haproxy" else "nginx.conf")
        self.proc: subprocess.Popen | None = None
        target = {"kind": kind, "config": str(self.live), "binary": find_binary(kind),
                  "probes": [{"url": f"http://{HOST}:{self.port}/"}],
                  "lock_timeout": "30s", "reload_timeout": "15s"}
        if kind == "haproxy":
            target.update(master_socket=str(directory / "master.sock"), master_log=str(directory / "haproxy.log"),
                          stats_socket=str(directory / "stats.sock"), state_file=str(directory / "haproxy.state"),
                          hard_stop_after=SHUTDOWN_TIMEOUT, mworker_max_reloads=MAX_RELOADS)
            if "runtime_api" in lbctl_config.TARGET_KEYS.get("haproxy", ()):
                target["runtime_api"] = runtime_api  # off: every membership change is a reload
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
        raw = {
            "listeners": {"web": {"address": HOST, "port": self.port, "default_pool": "app"}},
            "pools": {"app": {
                "health": {"type": "http", "path": "/", "interval": "1s"},
                "members": [{"name": f"b{i}", "address": HOST, "port": self.backends[i]} for i in self.members(step)],
            }},
        }
        self.inventory_path.write_text(yaml.safe_dump(raw))

    def apply(self) -> tuple[int, str, float]:
        start = time.monotonic()
        done = subprocess.run([*lbctl_argv(), "apply", "-c", str(self.config)], capture_output=True, text=True,
                              cwd=self.dir, timeout=120)
        return done.returncode, (done.stdout + done.stderr).strip(), time.monotonic() - start

    def start(self) -> None:
        if self.kind == "haproxy":
            argv = [find_binary("haproxy"), "-W", "-f", str(self.live),
                    "-S", f"{self.dir / 'master.sock'},level,admin", "-p", str(self.dir / "haproxy.pid")]
            out = self.dir / "haproxy.log"
        else:
            argv = [find_binary("nginx"), "-c", str(self.live), "-p", f"{self.dir}/",
                    "-e", str(self.dir / "error.log"), "-g", "daemon off;"]
            out = self.dir / "nginx.stderr"
        with open(out, "ab") as f:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f, start_new_session=True)
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
        try:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            conn.request("GET", "/", headers={"Connection": "close"})
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def process_reloads(self) -> int | None:
        """Reloads the process itself counted: haproxy's ``show proc``, nginx's SIGHUPs in its error log."""
        if self.kind == "haproxy":
            try:
                return MasterCLI(self.dir / "master.sock").show_proc(timeout=2.0).reloads
            except CommandError:
                return None
        try:
            return (self.dir / "error.log").read_text(errors="replace").count("SIGHUP) received")
        except OSError:
            return None

    def old_processes(self) -> int | None:
        """Old haproxy workers (``show proc``), or nginx workers shutting down; None if unknown."""
        if self.kind == "haproxy":
            try:
                return len(MasterCLI(self.dir / "master.sock").show_proc(timeout=1.0).old_workers)
            except CommandError:
                return None  # the master is re-executing
        gen = nginx_ctl.generation(self.dir / "nginx.pid")
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


class Sampler(threading.Thread):
    """Samples the number of old processes every ``SAMPLE_EVERY`` seconds."""

    def __init__(self, setup: Setup) -> None:
        super().__init__(daemon=True)
        self.setup, self.stop, self.max, self.samples = setup, threading.Event(), 0, 0

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            n = self.setup.old_processes()
            if n is not None:
                self.samples += 1
                self.max = max(self.max, n)


# --------------------------------------------------------------------------- one target

def bench_target(kind: str, backend_ports: list[int], args: argparse.Namespace, ctx) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"lbctl-bench-reload-{kind}-") as tmp:
        setup = Setup(kind, Path(tmp), backend_ports, args.templates, args.haproxy_runtime_api)
        (setup.dir / "tmp").mkdir()
        setup.write_inventory(0)
        rc, out, _ = setup.apply()
        if rc != 0:
            raise RuntimeError(f"first lbctl apply failed ({rc}): {out}")
        wanted = (("option idle-close-on-response", f"hard-stop-after {SHUTDOWN_TIMEOUT}",
                   f"mworker-max-reloads {MAX_RELOADS}") if kind == "haproxy"
                  else (f"worker_shutdown_timeout {SHUTDOWN_TIMEOUT};",))
        rendered = [line.strip() for line in setup.live.read_text().splitlines()
                    if line.strip().startswith(wanted)]
        log(f"{kind}: rendered {rendered}")
        stop = ctx.Event()
        loaders: list[tuple[str, mp.Process, object]] = []
        sampler = Sampler(setup)
        try:
            setup.start()
            log(f"{kind}: listening on {HOST}:{setup.port}, members {setup.members(0)}, dir {tmp}")
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
            sampler.start()
            time.sleep(args.warmup)
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
                    how["reload" if "reloaded" in out else "runtime" if "runtime API" in out else "other"] += 1
                # Did membership change?  Fresh connections right after the apply must reach members
                # only (an error also counts as a non-member answer).
                members = {f"b{m}" for m in setup.members(i)}
                stale += sum(n for b, n in setup.answers(6).items() if b not in members)
                if i % 10 == 0 or i == args.applies:
                    log(f"{kind}: {i}/{args.applies} applies, {len(failures)} failed, "
                        f"{time.monotonic() - start:.1f}s, old processes max {sampler.max}")
            series = time.monotonic() - start
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
    close, ka = results["close"], results["keepalive"]
    idle = results.get("idle", {"requests": 0, "failed": 0, "retries": 0, "failures": {}})
    return {
        "applies": len(durations) - len(failures),
        "applies_failed": len(failures),
        "applies_by": dict(how),  # reload / runtime (haproxy Runtime API, no reload)
        "process_reloads": process_reloads,
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
        "load_covered_all_applies": load_alive,
        "apply_seconds": {"median": round(statistics.median(durations), 3), "max": round(max(durations), 3)},
        "series_seconds": round(series, 1),
        "old_processes": {"max": sampler.max, "at_end": old_at_end,
                          f"after_{SHUTDOWN_SECONDS + 2:g}s": old_after, "samples": sampler.samples},
        "after_apply_checks": {"requests": 6 * len(durations), "non_member_answers": stale},
        "rendered": rendered,
        "apply_errors": failures[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applies", type=int, default=100)
    parser.add_argument("--targets", default="haproxy,nginx")
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
    parser.add_argument("--templates", help="lbctl.yml 'templates': override packaged templates (control runs)")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets:
        if t not in ("haproxy", "nginx"):
            parser.error(f"unknown target {t!r}")
    ctx = mp.get_context("spawn")
    stop_backends = ctx.Event()
    recv, send = ctx.Pipe(duplex=False)
    backends = ctx.Process(target=backend_main, args=(3, send, stop_backends), name="backends")
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
    print(json.dumps(report))


if __name__ == "__main__":
    main()
