"""Runtime changes for the reload benchmark (Apache): member changes made in the bench process
through lbctl's own deploy path, as ``lbctl watch`` makes them (``deploy(defer=True)``: the
check, the change through balancer-manager and its read-back; the probes and the file write
after, by ``deploy.flush``), each flipping one member's weight (1 and 2) or its drain state.

"Live" is from the start of the deploy to its return: the read-back through balancer-manager
has then shown the new state.  Graceful restarts are counted by the parent's configuration
generation (server-status) before and after the series: 0 when every change went through
balancer-manager."""

from __future__ import annotations

import statistics
import time

import yaml

from lbctl_testkit.bench import lbctl_api
from lbctl_testkit.bench.procs import log


def change(setup, step: int) -> None:
    """inventory.yml for the last apply's members with member 0's weight or drain flipped."""
    raw = yaml.safe_load(setup.inventory_path.read_text())
    first = raw["pools"]["app"]["members"][0]
    first.pop("state", None)
    first["weight"] = 1 + step % 2 if step % 4 < 2 else 1
    if step % 4 == 3:
        first["state"] = "drain"
    setup.inventory_path.write_text(yaml.safe_dump(raw))


def generation(setup) -> int | None:
    return lbctl_api.apache_ctl.config_generation(setup.manager)


def runtime_series(setup, count: int) -> dict:
    """``count`` runtime changes; how long each took to be live, failures and graceful restarts."""
    session = lbctl_api.Session(setup.config, None, None, None)
    target = session.target(session.selected[0])
    before, took, failures, how = generation(setup), [], [], {"runtime": 0, "other": 0}
    for step in range(1, count + 1):
        change(setup, step)
        desired = session.desired()
        start = time.monotonic()
        try:
            outcome = lbctl_api.deploy.deploy(target, desired, defer=True)
            took.append(time.monotonic() - start)
            how["runtime" if "runtime API" in outcome.message else "other"] += 1
            with target.state.lock():
                lbctl_api.deploy.flush(target)  # verify, then write the file (outside the measure)
        except lbctl_api.LbctlError as exc:
            failures.append(f"change {step}: {exc}")
        if step % 50 == 0 or step == count:
            log(f"{setup.kind}: {step}/{count} runtime changes, {len(failures)} failed")
    after = generation(setup)
    ms = sorted(t * 1000 for t in took)
    return {"changes": len(took), "failed": len(failures), "by": how,
            "gracefuls": None if before is None or after is None else after - before,
            "p50_ms": round(statistics.median(ms), 1) if ms else None,
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1) if ms else None,
            "errors": failures[:5]}
