"""Benchmark: render 10,000 pools x 10 members (100,000 servers) and check the result.

Times ``lbctl render`` as a whole process (start-up, inventory load, validation,
rendering, atomic write) with its peak memory, then the real ``haproxy -c`` on
the same output, in the same run.  The last line printed is one JSON object.

    python bench/render.py [--pools 10000] [--members 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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
                {"name": f"m{m}", "address": f"10.{p // 250}.{p % 250}.{m + 1}", "port": 8080, "weight": 1 + m % 4}
                for m in range(members)]}
            for p in range(pools)
        },
    }


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(argv)}: {proc.stderr.read().decode()[:500]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="report the median of this many runs")
    args = parser.parse_args()
    lbctl = shutil.which("lbctl") or sys.exit("lbctl is not installed (pip install .)")
    haproxy = shutil.which("haproxy") or sys.exit("haproxy is not installed")
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        inv, out = Path(tmp) / "inventory.json", Path(tmp) / "haproxy.cfg"
        inv.write_text(json.dumps(inventory(args.pools, args.members)))
        renders, checks = [], []
        for _ in range(args.runs):
            renders.append(timed([lbctl, "render", "-i", str(inv), "-t", "haproxy", "-o", str(out)]))
            checks.append(timed([haproxy, "-c", "-q", "-f", str(out)]))
        render_s = sorted(r[0] for r in renders)[len(renders) // 2]
        check_s = sorted(c[0] for c in checks)[len(checks) // 2]
        result = {
            "servers": args.pools * args.members,
            "render_s": round(render_s, 3),
            "render_peak_mb": round(max(r[1] for r in renders), 1),
            "haproxy_check_s": round(check_s, 3),
            "ratio": round(render_s / check_s, 3),
            "config_mb": round(out.stat().st_size / 2**20, 1),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
