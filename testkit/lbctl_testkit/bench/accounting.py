"""Figures: nearest-rank percentiles and summaries, CPU time and resident memory from /proc,
and the JSON result line."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def summarize(values: list[float], digits: int = 1, keys: tuple[str, ...] = ("p50", "p90", "p99", "max", "min", "mean")
              ) -> dict:
    """The chosen figures of ``values`` (pNN, min, max, mean), rounded to ``digits``; {} when empty."""
    if not values:
        return {}
    out = {}
    for key in keys:
        if key.startswith("p"):
            out[key] = round(percentile(values, float(key[1:])), digits)
        else:
            out[key] = round({"min": min, "max": max, "mean": statistics.fmean}[key](values), digits)
    return out


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime + cutime + cstime (clock ticks) from the text of /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return sum(int(x) for x in fields[11:15])


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and of its reaped children (``haproxy -c`` runs as lbctl's child); 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    return stat_cpu_ticks(stat) / os.sysconf("SC_CLK_TCK")


def status_rss_mb(status: str) -> dict:
    """VmRSS and VmHWM (``now``, ``peak``) in MB from the text of /proc/<pid>/status."""
    lines = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"now": round(int(lines["VmRSS"].split()[0]) / 1024, 1),
            "peak": round(int(lines["VmHWM"].split()[0]) / 1024, 1)}


def rss_mb(pid: int) -> dict:
    """Resident memory of ``pid`` now and at its peak, in MB ({} if gone)."""
    try:
        return status_rss_mb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return {}


def timed(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process run
    from bytecode (without PYTHONDONTWRITEBYTECODE); exits the bench on a non-zero exit."""
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(argv)}: {proc.stderr.read().decode()[:500]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def result_line(result: dict) -> None:
    """Print the bench's summary: one JSON object, the last line on stdout."""
    print(json.dumps(result), flush=True)
