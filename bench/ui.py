"""Benchmark: the operator page of ``lbctl watch --listen`` at 10,000 pools, loaded in
Debian's headless chromium (selenium, chromedriver).

Everything runs on 127.0.0.1 in a temp dir and is always stopped at the end (the harness
is ``lbctl_testkit.bench``), as ``lbctl watch`` runs in production:

* the Consul emulator in a child process of its own with ``--pools`` services of
  ``--members`` instances each (unused 10.x addresses, health type ``none``), its
  connection cap on;
* HAProxy in master-worker mode on the config ``lbctl apply`` wrote (``--pools`` ×
  ``--members`` servers), and ``lbctl watch --listen`` as a real process: the page
  reads HAProxy's stats socket for every member's live state and the audit log;
* chromium, headless, with a fresh profile.

After one warm-up load, ``--runs`` loads of the first page (100 pools), each in a fresh
navigation from ``about:blank`` and ``--gap`` seconds apart, so that the page's shared
reads (the stats socket, each target's status: cached for a second or two) are cold
every time, as for one operator. For each load: the navigation timings
(``responseEnd``, ``domContentLoadedEventEnd``, ``loadEventEnd``, ms from the start of
the navigation), the bytes of the page, and the CPU that ``lbctl watch`` and HAProxy's
worker spent during it. Then one load with a filter (``q=``) that one pool matches.

Progress goes to stderr; a detailed JSON object, then the summary (medians) as the last
line::

    python bench/ui.py [--pools 10000] [--members 5] [--runs 3]

``--screenshot PATH`` instead builds a small realistic set-up (a few listeners, routes,
pools from the inventory and from Consul, a member down with its check, a few applies in
the history) and saves the page as a PNG: the screenshot of docs/dashboard.md::

    python bench/ui.py --screenshot docs/img/dashboard.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lbctl_testkit.bench import lbctl_api, procs
from lbctl_testkit.bench.accounting import cpu_seconds, result_line, rss_mb
from lbctl_testkit.bench.backends import ok_backends
from lbctl_testkit.bench.consul import Emulator, service_name, watching
from lbctl_testkit.bench.haproxy import start_haproxy
from lbctl_testkit.bench.procs import HOST, code_version, loadavg, log, popen, stop_group, wait_for
from lbctl_testkit.bench.watch import apply, first_timeout, lbctl_config, write_config, write_inventory
from lbctl_testkit.support import browser as chromium
from lbctl_testkit.support import free_port
from lbctl_testkit.support.procs import http_get

TIMINGS = ("responseEnd", "domContentLoadedEventEnd", "loadEventEnd")
NAVIGATION = "const n = performance.getEntriesByType('navigation')[0]; return n.toJSON()"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10_000, help="Consul services, one pool each")
    parser.add_argument("--members", type=int, default=5, help="instances per service")
    parser.add_argument("--runs", type=int, default=3, help="measured loads of the first page (the median is reported)")
    parser.add_argument("--gap", type=float, default=3.0, help="s between two loads (the page's shared reads expire)")
    parser.add_argument("--wait", default="10s", help="source.consul.wait")
    parser.add_argument("--screenshot", metavar="PATH", help="save the demo set-up's page as a PNG instead")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed on stderr)")
    args = parser.parse_args()
    if chromium.missing():
        sys.exit(chromium.missing())
    return args


def worker_cpu(d: Path) -> float:
    """CPU seconds of HAProxy's current workers (the master's children are not reaped)."""
    pids = lbctl_api.MasterCLI(d / "master.sock").show_proc(timeout=5.0).worker_pids
    return sum(cpu_seconds(pid) for pid in pids)


def one_load(browser, url: str, d: Path, watch_pid: int) -> dict:
    """Open ``url`` from about:blank (selenium returns after the load event): its timings and CPU."""
    browser.open("about:blank")
    cpu_w, cpu_h = cpu_seconds(watch_pid), worker_cpu(d)
    browser.open(url)
    nav = browser.js(NAVIGATION)
    cpu_w, cpu_h = cpu_seconds(watch_pid) - cpu_w, worker_cpu(d) - cpu_h
    out = {k: round(nav[k], 1) for k in TIMINGS}
    out.update(bytes=nav.get("encodedBodySize"), lbctl_cpu_ms=round(cpu_w * 1000), haproxy_cpu_ms=round(cpu_h * 1000),
               pools_shown=len(browser.find("section.pool")), members_shown=len(browser.find("tr.member")))
    return out


def median(loads: list[dict], key: str) -> float:
    return round(statistics.median(x[key] for x in loads), 1)


def measure(args, url: str, d: Path, watch_pid: int) -> tuple[list[dict], dict]:
    with chromium.running_chromium() as browser:
        log("warm-up load")
        one_load(browser, url, d, watch_pid)
        loads = []
        for n in range(args.runs):
            time.sleep(args.gap)  # pacing: the page's cached reads expire between loads
            loads.append(one_load(browser, url, d, watch_pid))
            log(f"load {n + 1}: {loads[-1]}")
        time.sleep(args.gap)
        filtered = one_load(browser, url + f"?q={service_name(args.pools - 1)}", d, watch_pid)
        log(f"filtered: {filtered}")
        if browser.errors():
            raise RuntimeError(f"console errors: {browser.errors()[:3]}")
    return loads, filtered


def start(args, d: Path, cleanup: contextlib.ExitStack) -> tuple[str, subprocess.Popen]:
    """The emulator, a probe backend, ``lbctl apply``, HAProxy and ``lbctl watch --listen``, each
    stopped by ``cleanup``; once the page shows every pool: its URL and the watch."""
    log(f"emulator: {args.pools} services x {args.members} instances")
    emu = Emulator(args.pools, args.members, procs.duration(args.wait))
    cleanup.callback(emu.stop)
    backends, ports = ok_backends(1)
    cleanup.callback(backends.kill)
    listen, page = free_port(), free_port()
    write_inventory(d, listen, ports[0])
    services = [service_name(i) for i in range(args.pools)]
    config = write_config(d / "lbctl.yml", lbctl_config(d, emu.port, services, args.wait, listen))
    t = time.monotonic()
    apply(d, config)
    log(f"lbctl apply: {time.monotonic() - t:.1f}s; starting haproxy and lbctl watch --listen")
    cleanup.callback(stop_group, start_haproxy(d, d / "haproxy.cfg"))
    watch = popen([sys.executable, "-m", "lbctl", "watch", "-c", str(config), "--listen", f"{HOST}:{page}"],
                  d / "watch.log", cwd=d)
    cleanup.callback(stop_group, watch)
    watching(emu, watch)
    url = f"http://{HOST}:{page}/"
    wait_for(lambda: page_ready(url, args.pools + 1), first_timeout(args.pools), "the page to show every pool")
    return url, watch


def run() -> None:
    args = parse_args()
    if args.screenshot:
        from lbctl_testkit.bench.dashboard_demo import screenshot

        return screenshot(Path(args.screenshot).resolve(), args.keep)
    started = time.monotonic()
    d = Path(tempfile.mkdtemp(prefix="lbctl-ui-"))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(procs.keep_or_remove, d, args.keep)
        url, watch = start(args, d, cleanup)
        load_before = loadavg()
        loads, filtered = measure(args, url, d, watch.pid)
        detail = {"loads": loads, "filtered": filtered, "loadavg_1m": {"before": load_before, "after": loadavg()},
                  "lbctl_rss_mb": rss_mb(watch.pid), "lbctl": code_version(),
                  "total_s": round(time.monotonic() - started, 1)}
        print(json.dumps(detail, indent=1))
        result_line({"pools": args.pools, "members": args.pools * args.members,
                     **{f"{k}_ms": median(loads, k) for k in TIMINGS},
                     "lbctl_cpu_ms": median(loads, "lbctl_cpu_ms"), "haproxy_cpu_ms": median(loads, "haproxy_cpu_ms"),
                     "page_bytes": median(loads, "bytes"), "filtered_load_ms": filtered["loadEventEnd"]})


def page_ready(url: str, pools: int) -> bool:
    """``/api/v1/status`` answers with every pool and live states from HAProxy."""
    try:
        status = json.loads(http_get(url + "api/v1/status", timeout=30).body)
    except (OSError, ValueError):
        return False
    return status["pools"]["total"] >= pools and all(t["live"] == "reported" for t in status["targets"])


if __name__ == "__main__":
    procs.main(run)
