"""Benchmark: sync 1,000 pools x 10 members to a BIG-IP (the emulator) through f5-sdk.

Runs the real deploy path (plan, check, apply, save, verify) of a ``kind: bigip``
target against ``lbctl_testkit.emulators.bigip`` over verified TLS, and counts the REST
calls the emulator saw and the wall time of:

- the first sync (everything created: one transaction), including the login;
- a sync after one member changed (its weight), on the same target, as
  ``lbctl watch`` would run it.

The last line printed is one JSON object.  The harness is ``lbctl_testkit.bench``.

    python bench/bigip.py [--pools 1000] [--members 10]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import tempfile
import time
from pathlib import Path

from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import result_line
from lbctl_testkit.bench.lbctl_api import BigIPTarget, config, deploy, model
from lbctl_testkit.emulators.bigip import BigIPEmulator


def desired(pools: int, members: int, changed: bool = False) -> model.Desired:
    health = model.HealthCheck(type="http", path="/healthz", interval_ms=2000)
    out = []
    for p in range(pools):
        ms = tuple(model.Member(name=f"m{m}", address=f"10.{p // 250}.{p % 250}.{m + 1}", port=8080,
                                weight=1 + m % 4 + (1 if changed and p == pools // 2 and m == 0 else 0))
                   for m in range(members))
        out.append(model.Pool(name=f"pool-{p:04d}", members=ms, health=health))
    return model.Desired(pools=tuple(out))


def shape(path: str) -> str:
    """``/mgmt/tm/ltm/pool/~Common~p/members/~Common~m`` -> ``/mgmt/tm/ltm/pool/{name}/members/{name}``."""
    return re.sub(r"/\d+$", "/{id}", re.sub(r"/~[^/]+", "/{name}", path.rstrip("/")))


def measure(emu: BigIPEmulator, target: BigIPTarget, want: model.Desired) -> tuple[int, float, dict, str]:
    emu.clear_requests()
    start = time.perf_counter()
    outcome = deploy.deploy(target, want)
    elapsed = time.perf_counter() - start
    calls = collections.Counter(f"{r.method} {shape(r.path)}" for r in emu.requests)
    return len(emu.requests), elapsed, dict(calls), outcome.result


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--members", type=int, default=10)
    args = parser.parse_args()
    os.environ["LBCTL_BENCH_BIGIP_PASSWORD"] = "bench-secret"
    with BigIPEmulator("admin", "bench-secret") as emu, tempfile.TemporaryDirectory() as tmp:
        raw = {"kind": "bigip", "host": "127.0.0.1", "port": emu.port, "username": "admin",
               "password_env": "LBCTL_BENCH_BIGIP_PASSWORD", "ca_bundle": emu.ca_path}
        target = BigIPTarget(config.target("bench", raw, "targets.bench", Path(tmp), Path(tmp)))
        first_calls, first_s, first_by, first = measure(emu, target, desired(args.pools, args.members))
        transactions = emu.device.txns.commits
        again_calls, again_s, _, again = measure(emu, target, desired(args.pools, args.members))
        one_calls, one_s, one_by, one = measure(emu, target, desired(args.pools, args.members, changed=True))
        assert (first, again, one) == ("applied", "unchanged", "applied"), (first, again, one)
        assert emu.internal_errors == []
    print(f"first sync:  {first_calls} calls in {first_s:.2f}s, {transactions} transaction(s): {first_by}")
    print(f"no change:   {again_calls} calls in {again_s:.2f}s")
    print(f"one change:  {one_calls} calls in {one_s:.2f}s: {one_by}")
    result_line({"pools": args.pools, "members": args.pools * args.members,
                 "first_sync_calls": first_calls, "first_sync_s": round(first_s, 2),
                 "first_sync_transactions": transactions, "no_change_calls": again_calls,
                 "no_change_s": round(again_s, 2), "one_change_calls": one_calls,
                 "one_change_s": round(one_s, 2)})


if __name__ == "__main__":
    procs.main(run)
