"""Benchmark: render 100,000 servers (10,000 pools x 10 members) and check the result.

Times ``lbctl render`` as a whole process (start-up, inventory load, validation,
rendering, atomic write) with its peak memory, then the real ``haproxy -c`` on
the same output, in the same run, alternating.  Each is reported as wall time
and as CPU time (user + system, from the child's rusage): on a shared machine
the CPU ratio is the steadier one.  One untimed ``lbctl render`` comes first, and
lbctl runs without PYTHONDONTWRITEBYTECODE, so that its modules are timed from
bytecode as in an installed package, not compiled from source every run (the
untimed render also fills lbctl's cache of compiled templates and the patterns it
saves for the next render, docs/cli.md "Templates").  The
last line printed is one JSON object.  The harness is ``lbctl_testkit.bench``.

    python bench/render.py [--servers 100000] [--members 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from statistics import median_high

from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import result_line, timed
from lbctl_testkit.bench.procs import binary


def address(index: int) -> str:
    """The index-th address of 10.0.0.0/8 (up to 16,777,215 distinct ones)."""
    return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"


def inventory(pools: int, members: int) -> dict:
    return {
        "version": 1,
        "defaults": {"pool": {"health": {"type": "http", "path": "/healthz", "interval": "2s"}}},
        "listeners": {
            "public": {"address": "127.0.0.1", "port": 18080, "default_pool": "pool-0",
                       "routes": [{"host": f"svc{p}.example.com", "pool": f"pool-{p}"} for p in range(min(pools, 100))]},
        },
        "pools": {
            f"pool-{p}": {"members": [
                {"name": f"m{m}", "address": address(p * members + m + 1), "port": 8080, "weight": 1 + m % 4}
                for m in range(members)]}
            for p in range(pools)
        },
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100_000, help="servers in all (pools = servers / members)")
    parser.add_argument("--members", type=int, default=10, help="servers per pool")
    parser.add_argument("--runs", type=int, default=3, help="report the median of this many runs")
    args = parser.parse_args()
    pools = max(1, args.servers // args.members)
    if pools * args.members >= 2**24:
        sys.exit("at most 16,777,215 servers (one 10.0.0.0/8 address each)")
    lbctl = shutil.which("lbctl") or sys.exit("lbctl is not installed (pip install .)")
    haproxy = binary("haproxy")
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        inv, out = Path(tmp) / "inventory.json", Path(tmp) / "haproxy.cfg"
        inv.write_text(json.dumps(inventory(pools, args.members)))
        render = [lbctl, "render", "-i", str(inv), "-t", "haproxy", "-o", str(out)]
        timed(render)  # warm-up: bytecode written, files in the page cache
        renders, checks = [], []
        for _ in range(args.runs):
            renders.append(timed(render))
            checks.append(timed([haproxy, "-c", "-q", "-f", str(out)]))
        render_s, render_cpu = median_high([r[0] for r in renders]), median_high([r[1] for r in renders])
        check_s, check_cpu = median_high([c[0] for c in checks]), median_high([c[1] for c in checks])
        result = {
            "servers": pools * args.members,
            "render_s": round(render_s, 3),
            "render_cpu_s": round(render_cpu, 3),
            "render_peak_mb": round(max(r[2] for r in renders), 1),
            "haproxy_check_s": round(check_s, 3),
            "haproxy_check_cpu_s": round(check_cpu, 3),
            "haproxy_check_peak_mb": round(max(c[2] for c in checks), 1),
            "ratio": round(render_s / check_s, 3),
            "cpu_ratio": round(render_cpu / check_cpu, 3),
            # each run's own CPU ratio: the two processes ran back to back under the same load
            "cpu_ratios": [round(r[1] / c[1], 3) for r, c in zip(renders, checks)],
            "config_mb": round(out.stat().st_size / 2**20, 1),
        }
    result_line(result)


if __name__ == "__main__":
    procs.main(run)
