"""Benchmark: failovers of a keepalived pair under steady client load (issue #17).

The pair of tests/integration/test_keepalived_pair.py (``lbctl_testkit.support.netns``
and ``.pair``): network namespaces for two nodes (HAProxy + keepalived + lbctl each),
a client and a bridge, addresses of 198.18.0.0/15 only, all removed at the end (on
SIGTERM and Ctrl-C too).  Needs root.

``--failovers`` rounds of each kind, each under two clients in the client namespace
(a request every 20 ms, one on a new connection each time, one keep-alive):

* ``link``: the master's link goes down; when the peer holds the VIP and answers,
  it comes back up and the master takes the VIP back (preemption);
* ``kill``: the master's HAProxy is killed (keepalived's ``vrrp_track_process``
  hears of it from the kernel: FAULT); then started again, and the master takes
  the VIP back;
* ``planned``: ``lbctl drain-node``, then ``lbctl drain-node --restore`` (each
  node's ``lbctl watch`` runs: drain-node asks the peer whether it is ready, and
  --restore asks it to close its client connections first; each node's HAProxy
  has a ``drain_map``).

A round's gap is the longest time a client went without an answer (a request
fails after 2 s without one, a connection not made within 0.25 s).  The clients
never retry: a request without an answer is failed.  In an unplanned failover a
kept-alive connection to the old master when the VIP moves is reset by the new one
(VRRP moves addresses, not connections): counted in ``failed_keep_alive``; a planned
one closes those connections first (docs/high-availability.md).  The last stdout
line is one JSON object::

    python bench/vrrp.py [--failovers 20] [--vrrpv3]

``failovers``, ``gap_p50_s``, ``gap_max_s`` (unplanned rounds), ``failed`` and
``requests`` (all rounds), ``planned_failed`` (both clients, and apart:
``planned_failed_new_connection``, ``planned_failed_keep_alive``), and per kind the
same figures with ``failed_new_connection`` and ``failed_keep_alive`` apart, and
``failed_reused``: those on a connection kept alive from the request before (what
VRRP cannot move; a planned switchover closes them first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from lbctl_testkit.support.netns import Lab, stop
from lbctl_testkit.support.pair import TAKEOVER, Client, gap, settle, start_pair
from lbctl_testkit.support.procs import wait_until


def link(lab, a, b, client) -> None:
    lab.link("a", up=False)
    wait_until(b.holds, TAKEOVER, "b to take the VIP")
    client.reached("b")
    lab.link("a", up=True)


def kill(lab, a, b, client) -> None:
    stop(a.haproxy, sig=signal.SIGKILL)
    wait_until(b.holds, TAKEOVER, "b to take the VIP")
    client.reached("b")
    a.start_haproxy()


def planned(lab, a, b, client) -> None:
    a.cli("drain-node", "-t", "vip", "--timeout", str(TAKEOVER))
    client.reached("b")
    a.cli("drain-node", "-t", "vip", "--restore", "--timeout", str(TAKEOVER))


KINDS = {"link": link, "kill": kill, "planned": planned}


def round_(lab, a, b, kind: str, n: int) -> list[list[list]]:
    clients = [Client(lab, f"{kind}-{n}-new"), Client(lab, f"{kind}-{n}-keep", keepalive=True)]
    KINDS[kind](lab, a, b, clients[0])
    settle(a, b)
    for client in clients:
        client.reached("a")
    return [c.results() for c in clients]


def failed(runs: list[list[list]]) -> int:
    return sum(x[2] is None for r in runs for x in r)


def figures(runs: list[list[list]]) -> dict:
    """``runs``: each round's new-connection client, then its keep-alive one."""
    gaps = [gap(r) for r in runs]
    return {"rounds": len(runs) // 2, "gap_p50_s": round(statistics.median(gaps), 3) if gaps else None,
            "gap_max_s": round(max(gaps, default=0), 3), "failed": failed(runs),
            "failed_new_connection": failed(runs[0::2]), "failed_keep_alive": failed(runs[1::2]),
            "failed_reused": sum(x[2] is None and x[4] for r in runs for x in r),
            "requests": sum(len(r) for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=20, help="rounds of each kind")
    parser.add_argument("--vrrpv3", action="store_true", help="VRRPv3 with advert_int 100ms (no authentication)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/vrrp.py needs root (network namespaces)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the with blocks clean up
    vrrp = {"vrrp_version": 3, "advert_int": "100ms", "auth_pass_file": None} if args.vrrpv3 else {}
    per_kind = {}
    with tempfile.TemporaryDirectory(prefix="lbctl-vrrp-") as tmp, Lab(Path(tmp)) as lab:
        a, b = start_pair(lab, watch=True, **vrrp)
        for kind in KINDS:
            runs = []
            for n in range(args.failovers):
                runs += round_(lab, a, b, kind, n)
                print(f"{kind} {n + 1}/{args.failovers}: gaps {[round(gap(r), 3) for r in runs[-2:]]}",
                      file=sys.stderr)
            per_kind[kind] = figures(runs)
    unplanned = [per_kind[k] for k in ("link", "kill")]
    result = {"failovers": sum(k["rounds"] for k in per_kind.values()),
              "gap_p50_s": round(statistics.median([k["gap_p50_s"] for k in unplanned]), 3),
              "gap_max_s": max(k["gap_max_s"] for k in unplanned),
              "failed": sum(k["failed"] for k in per_kind.values()),
              "requests": sum(k["requests"] for k in per_kind.values()),
              "planned_failed": per_kind["planned"]["failed"],
              "planned_failed_new_connection": per_kind["planned"]["failed_new_connection"],
              "planned_failed_keep_alive": per_kind["planned"]["failed_keep_alive"],
              "vrrpv3": args.vrrpv3, "kinds": per_kind}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
