"""Benchmark: HAProxy's own CPU per reload of a large configuration rendered by lbctl.

Renders, with ``lbctl render -c lbctl.yml``, the configuration bench/runtime.py's
reload phase reloads: ``--services`` pools (``svc-0000``...) of ``--instances``
members each, health type ``none``, one listener.  Then times ``haproxy -c`` on
it (CPU of the child), starts HAProxy in master-worker mode, and reloads it
``--reloads`` times through the master CLI, as lbctl does: the running
servers' states saved to the state file first, then ``reload``, confirmed when
every worker is new and the old one is gone.  HAProxy's CPU per reload is the
master's user + system time with its reaped children (the old worker's exit,
``haproxy -c`` excluded: it runs before HAProxy starts); its wall time is from the
master CLI's ``reload`` to every worker being new (``reload_wall_s``).  HAProxy inherits
the bench's environment: ``GLIBC_TUNABLES``, if set, is printed with the result (e.g.
``glibc.malloc.hugetlb=1``, transparent huge pages for malloc).  ``--global LINE``
adds a line to the global section (e.g. ``nbthread 1``), ``--no-state-file``
leaves the server-state file out, ``--header-only`` writes the state file without
its rows, to see what each costs.  The last line
printed is one JSON object.  Run one at a time: CPU figures are the steady ones
on a shared machine, wall times are not.

    python bench/haproxy_reload.py [--services 10000] [--instances 5] [--reloads 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from lbctl_testkit.bench import lbctl_api, procs
from lbctl_testkit.bench.accounting import cpu_seconds, result_line, timed
from lbctl_testkit.bench.haproxy import start_haproxy
from lbctl_testkit.bench.procs import HOST, binary, lbctl_argv, log, stop_group, wait_for
from lbctl_testkit.support import free_port


def write_setup(d: Path, services: int, instances: int) -> None:
    """inventory.json and lbctl.yml of one HAProxy target ``edge`` in ``d``."""
    pools = {f"svc-{s:04d}": {"members": [
        {"name": f"svc-{s:04d}-i{i}", "address": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", "port": 8080}
        for i in range(instances) for n in [s * instances + i + 1]]} for s in range(services)}
    inventory = {"version": 1, "defaults": {"pool": {"health": {"type": "none"}}},
                 "listeners": {"web": {"address": HOST, "port": free_port(), "default_pool": "svc-0000"}},
                 "pools": pools}
    (d / "inventory.json").write_text(json.dumps(inventory))
    config = {"source": {"inventory": "inventory.json"}, "state_dir": "state", "targets": {"edge": {
        "kind": "haproxy", "config": "haproxy.cfg", "binary": binary("haproxy"), "master_socket": "master.sock",
        "stats_socket": str(d / "stats.sock"), "state_file": str(d / "haproxy.state"), "hard_stop_after": "5s"}}}
    (d / "lbctl.yml").write_text(yaml.safe_dump(config))


def edited(text: str, extra: list[str], state_file: bool) -> str:
    """The rendered text with ``extra`` lines in its global section and, if not
    ``state_file``, without the server-state file."""
    lines = text.splitlines(keepends=True)
    at = lines.index("global\n") + 1
    lines[at:at] = [f"    {line}\n" for line in extra]
    if not state_file:
        lines = [x for x in lines if "server-state-file" not in x and "load-server-state-from-file" not in x]
    return "".join(lines)


def gone(pids: tuple[int, ...]) -> bool:
    return all(not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
               for pid in pids)


def reload_cpu(d: Path, reloads: int, state_file: bool, rows: bool) -> tuple[list[float], list[float]]:
    """HAProxy's CPU seconds for each of ``reloads`` reloads (see the module's docstring), and the
    seconds from the master CLI's ``reload`` to every worker being new."""
    master = lbctl_api.MasterCLI(d / "master.sock")
    master_pid = master.show_proc().master_pid
    spent, walls = [], []
    for n in range(reloads):
        old = master.show_proc().worker_pids
        before = cpu_seconds(master_pid)
        if state_file:  # as lbctl does before a reload (``save_server_states``)
            dump = lbctl_api.socket_command(d / "stats.sock", "show servers state")
            (d / "haproxy.state").write_text(dump if rows else "".join(dump.splitlines(keepends=True)[:2]))
        started = time.monotonic()
        master.reload(timeout=120)
        walls.append(time.monotonic() - started)
        wait_for(lambda: gone(old), 120, "the old worker's exit")
        time.sleep(0.2)  # reaped by the master
        spent.append(cpu_seconds(master_pid) - before)
        log(f"reload {n + 1}: {spent[-1]:.2f} s of HAProxy CPU, {walls[-1]:.2f} s to the new worker")
    return spent, walls


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--global", dest="extra", action="append", default=[], metavar="LINE",
                        help="a line to add to the global section (repeatable), e.g. 'nbthread 1'")
    parser.add_argument("--no-state-file", dest="state_file", action="store_false",
                        help="leave server-state-file and load-server-state-from-file out")
    parser.add_argument("--header-only", dest="rows", action="store_false",
                        help="write only the dump's version and header lines to the state file (what its rows cost)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-") as tmp:
        d = Path(tmp)
        write_setup(d, args.services, args.instances)
        cfg = d / "haproxy.cfg"
        subprocess.run([*lbctl_argv(), "render", "-c", "lbctl.yml", "-t", "edge", "-o", str(cfg)], cwd=d, check=True)
        cfg.write_text(edited(cfg.read_text(), args.extra, args.state_file))
        check = timed([binary("haproxy"), "-c", "-q", "-f", str(cfg)])
        haproxy = start_haproxy(d, cfg)
        try:
            spent, walls = reload_cpu(d, args.reloads, args.state_file, args.rows)
        finally:
            stop_group(haproxy)
        result_line({
            "services": args.services, "servers": args.services * args.instances,
            "global": args.extra, "state_file": args.state_file, "rows": args.rows,
            "config_mb": round(cfg.stat().st_size / 2**20, 1),
            "check_cpu_s": round(check[1], 2), "check_peak_mb": round(check[2], 1),
            "reload_cpu_s": round(statistics.median(spent), 2), "reload_cpu_s_each": [round(s, 2) for s in spent],
            "reload_wall_s": round(statistics.median(walls), 2), "reload_wall_s_each": [round(s, 2) for s in walls],
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
        })


if __name__ == "__main__":
    procs.main(run)
