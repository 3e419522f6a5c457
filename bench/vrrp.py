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

Each event's instant is ``time.monotonic()`` just before it begins (``ip link set
down``, the SIGKILL, ``drain-node`` run) and just after it returned; the clients'
timestamps are ``time.monotonic()`` too (one clock for every namespace).  A request of
the two clients fails after 2 s without an answer, a connection not made within
0.25 s; they never retry: a request without an answer is failed.

**The gap** (``gap_p50_s``, ``gap_max_s``, unplanned rounds) is the VIP's outage: from
the instant the failure began to the first answer, to any client, of a request
sent after it ended.  It is what an operator means by "the VIP was down for": no
request sent after the failure was answered before.  A client waiting for the
answer to a request lost in flight sends nothing new meanwhile, so a third client,
the probe (a new connection per request, given 0.15 s for its connection and for
its answer), runs beside the two: the outage is then late by at most about that,
never by a client's 2 s timeout nor by the others' 0.25 s for a connection.  The
probe's own requests are not counted anywhere else.  A client's own longest time
without an answer (``gap_*_per_client_s``: between the ends of two answered
requests in a row, less the usual spacing; all kinds) also counts what no failover
time can shorten: a request whose answer was lost waits for the client's own
timeout.  Both are reported, so nothing is hidden.

Each failed request of an unplanned round is counted by when it was sent:
``lost_in_flight`` (before the failure began: it or its answer was on the node that
failed), ``failed_at_failure`` (while the failure was being made, a few ms),
``failed_into_outage`` (after, before the fail-back began: the VIP had no working
holder yet), ``failed_at_failback`` (after the master came back and took the VIP
back by preemption: a kept-alive connection to the peer is reset, as at any move;
docs/high-availability.md "What a fail-back costs" says why a few are not reset
but wait for the client's timeout).  Planned rounds count theirs as
``failed_at_drain`` and ``failed_at_restore``.  ``failed_how`` counts each
class by client and exception.  In an unplanned failover a connection kept alive
to the old master is reset by the new one (VRRP moves addresses, not connections):
``failed_reused``; a planned one closes those connections first.  The last stdout
line is one JSON object::

    python bench/vrrp.py [--failovers 20] [--vrrpv3] [--forward-orphans 1s] [--kind link|kill|planned ...]

``failovers``, ``gap_p50_s``, ``gap_max_s``, ``gap_max_per_client_s`` and
``lost_in_flight`` (unplanned rounds), ``failed`` and ``requests`` (all rounds),
``forward_orphans`` (the option, or null),
``planned_failed`` (both clients, and apart: ``planned_failed_new_connection``,
``planned_failed_keep_alive``; null when ``--kind`` left planned out), and per kind
the same figures with ``failed_new_connection`` and ``failed_keep_alive`` apart,
``failed_reused`` (on a connection kept alive from the request before), the four
classes above and ``failed_how``.  Each round's outage, per-client gaps and unusual
failures (lost in flight, or waited over 1 s) go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from lbctl_testkit.support.netns import Lab, stop
from lbctl_testkit.support.pair import TAKEOVER, Client, gap, settle, start_pair
from lbctl_testkit.support.procs import wait_until


def moment(action) -> tuple[float, float]:
    """``time.monotonic()`` just before ``action`` and just after it returned."""
    before = time.monotonic()
    action()
    return before, time.monotonic()


def link(lab, a, b, client) -> dict:
    failure = moment(lambda: lab.link("a", up=False))
    wait_until(b.holds, TAKEOVER, "b to take the VIP")
    client.reached("b")
    return {"failure": failure, "failback": moment(lambda: lab.link("a", up=True))}


def kill(lab, a, b, client) -> dict:
    failure = moment(lambda: stop(a.haproxy, sig=signal.SIGKILL))
    wait_until(b.holds, TAKEOVER, "b to take the VIP")
    client.reached("b")
    return {"failure": failure, "failback": moment(a.start_haproxy)}


def planned(lab, a, b, client) -> dict:
    drain = moment(lambda: a.cli("drain-node", "-t", "vip", "--timeout", str(TAKEOVER)))
    client.reached("b")
    return {"drain": drain, "restore": moment(lambda: a.cli("drain-node", "-t", "vip", "--restore", "--timeout",
                                                             str(TAKEOVER)))}


KINDS = {"link": link, "kill": kill, "planned": planned}
UNPLANNED = ("link", "kill")
CLIENTS = ("new", "keep")  # the load; counted
PROBE_TIMEOUT = 0.15  # the probe: a new connection per request, its connection and answer within this; not counted
PHASES = ("lost_in_flight", "failed_at_failure", "failed_into_outage", "failed_at_failback")  # see phase()


def round_(lab, a, b, kind: str, n: int) -> dict:
    """One failover and its fail-back: ``events`` (each a ``moment``) and each client's requests."""
    clients = [Client(lab, f"{kind}-{n}-new"), Client(lab, f"{kind}-{n}-keep", keepalive=True),
               Client(lab, f"{kind}-{n}-probe", timeout=PROBE_TIMEOUT)]
    events = KINDS[kind](lab, a, b, clients[0])
    settle(a, b)
    for client in clients:
        client.reached("a")
    return {"events": events, **{name: c.results() for name, c in zip((*CLIENTS, "probe"), clients)}}


def outage(r: dict) -> float:
    """From the failure (before it began) to the first answer, to any client (the probe
    too), of a request sent after it (after it ended): how long the VIP answered no one."""
    began, ended = r["events"]["failure"]
    return min(start + took for c in (*CLIENTS, "probe") for start, took, body, *_ in r[c]
               if body is not None and start >= ended) - began


def phase(r: dict, start: float) -> str:
    """When a failed request of an unplanned round was sent, relative to its events."""
    began, ended = r["events"]["failure"]
    if start < began:
        return "lost_in_flight"  # sent before the failure: its answer (or it) was lost
    if start < ended:
        return "failed_at_failure"  # sent while the failure was being made
    return "failed_into_outage" if start < r["events"]["failback"][0] else "failed_at_failback"


def failures(r: dict, kind: str) -> list[dict]:
    """Each failed request: client, phase, when it was sent (relative to the first event's
    beginning), how long it took, why it failed and whether on a kept-alive connection."""
    zero = next(iter(r["events"].values()))[0]
    restore = r["events"].get("restore", (0, 0))[0]
    return [{"client": c, "phase": phase(r, start) if kind in UNPLANNED else
             "failed_at_restore" if start >= restore else "failed_at_drain",
             "sent_s": round(start - zero, 3), "took_s": round(took, 3), "error": error, "reused": reused}
            for c in CLIENTS for start, took, body, _, reused, error in r[c] if body is None]


def p50_max(values: list[float], name: str) -> dict:
    """``name`` with ``*`` as p50 and as max: the median and the largest of ``values`` (null if none)."""
    return {name.replace("*", "p50"): round(statistics.median(values), 3) if values else None,
            name.replace("*", "max"): round(max(values), 3) if values else None}


def figures(rounds: list[dict], kind: str) -> dict:
    """One kind's figures (the module's docstring names them)."""
    fails = [f for r in rounds for f in failures(r, kind)]
    out = {"rounds": len(rounds), **p50_max([gap(r[c]) for r in rounds for c in CLIENTS], "gap_*_per_client_s"),
           "failed": len(fails), "failed_new_connection": sum(f["client"] == "new" for f in fails),
           "failed_keep_alive": sum(f["client"] == "keep" for f in fails),
           "failed_reused": sum(f["reused"] for f in fails), "requests": sum(len(r[c]) for r in rounds for c in CLIENTS)}
    if kind in UNPLANNED:
        out |= p50_max([outage(r) for r in rounds], "gap_*_s")
        out |= {p: sum(f["phase"] == p for f in fails) for p in PHASES}
    out["failed_how"] = {p: dict(Counter(f"{f['client']} {f['error']}" for f in fails if f["phase"] == p))
                         for p in sorted({f["phase"] for f in fails})}
    return out


def progress(kind: str, n: int, total: int, r: dict) -> None:
    line = f"{kind} {n + 1}/{total}:"
    if kind in UNPLANNED:
        line += f" outage {outage(r):.3f} s,"
    line += f" per client {[round(gap(r[c]), 3) for c in CLIENTS]}"
    for f in failures(r, kind):
        if kind == "planned" or f["phase"] in ("lost_in_flight", "failed_at_failure") or f["took_s"] > 1:
            line += f"\n  {f}"
    print(line, file=sys.stderr)


def summary(rounds: dict[str, list[dict]], vrrpv3: bool, forward_orphans: str | None) -> dict:
    """The last line: ``rounds`` by kind."""
    per_kind = {kind: figures(r, kind) for kind, r in rounds.items()}
    unplanned = [r for kind in UNPLANNED for r in rounds.get(kind, [])]
    planned_ = per_kind.get("planned", {})
    return {"failovers": sum(k["rounds"] for k in per_kind.values()),
            **p50_max([outage(r) for r in unplanned], "gap_*_s"),
            "gap_max_per_client_s": max((k["gap_max_per_client_s"] for k in per_kind.values() if "lost_in_flight" in k),
                                        default=None),
            "lost_in_flight": sum(k.get("lost_in_flight", 0) for k in per_kind.values()),
            "failed": sum(k["failed"] for k in per_kind.values()),
            "requests": sum(k["requests"] for k in per_kind.values()),
            "planned_failed": planned_.get("failed"),
            "planned_failed_new_connection": planned_.get("failed_new_connection"),
            "planned_failed_keep_alive": planned_.get("failed_keep_alive"),
            "vrrpv3": vrrpv3, "forward_orphans": forward_orphans, "kinds": per_kind}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failovers", type=int, default=20, help="rounds of each kind")
    parser.add_argument("--vrrpv3", action="store_true", help="VRRPv3 with advert_int 100ms (no authentication)")
    parser.add_argument("--forward-orphans", metavar="DURATION",
                        help="the keepalived target's forward_orphans (docs/high-availability.md)")
    parser.add_argument("--kind", action="append", choices=list(KINDS),
                        help="only this kind of failover (repeatable; default: all three)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/vrrp.py needs root (network namespaces)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the with blocks clean up
    vrrp = {"vrrp_version": 3, "advert_int": "100ms", "auth_pass_file": None} if args.vrrpv3 else {}
    vrrp |= {"forward_orphans": args.forward_orphans} if args.forward_orphans else {}
    rounds = {}
    with tempfile.TemporaryDirectory(prefix="lbctl-vrrp-") as tmp, Lab(Path(tmp)) as lab:
        a, b = start_pair(lab, watch=True, **vrrp)
        for kind in [k for k in KINDS if k in (args.kind or KINDS)]:
            rounds[kind] = []
            for n in range(args.failovers):
                rounds[kind].append(round_(lab, a, b, kind, n))
                progress(kind, n, args.failovers, rounds[kind][-1])
    print(json.dumps(summary(rounds, args.vrrpv3, args.forward_orphans)))


if __name__ == "__main__":
    main()
