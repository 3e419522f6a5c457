"""Benchmark: leader failover between real ``lbctl watch`` controllers (issue #7).

Everything runs on 127.0.0.1 in a temp dir, in real time (the emulator's
``advance()`` is never used), and is always stopped at the end, on SIGTERM and Ctrl-C
too (the harness: ``lbctl_testkit.bench``, its controllers and election hooks in
``lbctl_testkit.bench.election``):

* the Consul emulator (``lbctl_testkit.emulators.consul``) in this process, with service
  ``app`` of ``--instances`` instances (health ``none`` in HAProxy: they are never
  connected to), and hooks that time-stamp what matters for an election: every
  TTL-check pass of a controller, a controller check going critical, every
  session invalidation, and every acquire/release of the leader key;
* a tiny HTTP backend behind the listener (the target's probe);
* HAProxy in master-worker mode (``-W -S master.sock,level,admin``) as the one
  target ``edge``, with ``shared: true``;
* ``--controllers`` ``lbctl watch`` processes (``ctl-1`` ...), each with its own
  lbctl-<name>.yml (``election`` with that name, ``--ttl``, ``--lock-delay``; its
  own ``metrics.listen`` port), all sharing haproxy.cfg, the state dir and the
  audit log ``audit.jsonl``; logs in ``watch-<name>.log``.

Each kill round: wait until exactly one controller reports ``lbctl_leader 1`` on
its /metrics (and the Consul key names it), every other one ``lbctl_leader 0``
and ready, each with a live session; sleep a random 0..TTL/2 (so the kill lands
at a random phase of the leader's check-pass cycle); ``kill -9`` the leader's
process group; at once flip one ``app`` instance's health in Consul (critical,
then back to passing the next round), so the new leader has a real change to
apply.  Failover = kill -> the end of the first audit entry with
``"result":"applied"`` written by another controller after the kill, after which
HAProxy serves the flipped state (``show servers state app``).  The killed
controller is then restarted (same name) and must rejoin as a follower before
the next round.

``--pauses`` rounds (after the kills) SIGSTOP the leader instead: the follower
must take over as above; then a second instance is flipped and the paused
leader is resumed (SIGCONT) at once, so it wakes with a change to apply while it
still believes it leads.  It must write nothing (it fences before every write).

``--quick-restarts`` rounds (optional, default 0) kill -9 the leader and restart
it right away (as ``Restart=always`` would), without waiting for the failover.

Stale writes: every audit entry written by a controller (after they started) is
checked against the holder of the leader key over time (from the emulator's
hooks): an entry is stale when, at the start of its apply (entry time minus its
``duration_s``; the first fence follows), the key was not held by that
controller's session, or that controller had been killed (or was paused) by then.
Entries during which the writer lost the key are counted apart (``overlaps``).

Progress goes to stderr; the last stdout line is one JSON object::

    python bench/failover.py [--kills 20] [--controllers 3] [--ttl 10] [--lock-delay 1] [--pauses 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lbctl_testkit.bench import procs
from lbctl_testkit.bench.accounting import percentile, result_line, summarize as summarize_figures
from lbctl_testkit.bench.backends import serve_ok
from lbctl_testkit.bench.cluster import Cluster
from lbctl_testkit.bench.election import POOL, Controller, Recorder, audit_entries, instance, write_setup
from lbctl_testkit.bench.haproxy import start_haproxy
from lbctl_testkit.bench.procs import log, stop_group, wait_for
from lbctl_testkit.bench.watch import apply
from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.support import free_port


def summarize(values: list[float]) -> dict:
    """min, p50, p90, max and mean, in s to the ms."""
    return summarize_figures(values, 3, ("min", "p50", "p90", "max", "mean"))


# --------------------------------------------------------------------------- the rounds

class Bench(Cluster):
    """The rounds: kill -9, quick restart, or pause the leader."""

    def kill_round(self, i: int, quick: bool = False) -> dict:
        a = self.args
        leader = self.steady(60)
        phase = self.rng.uniform(0, a.ttl / 2)
        time.sleep(phase)
        if self.rec.holder() != leader.name or leader.metric("lbctl_leader") != 1.0:
            leader = self.steady(60)
        followers = {c.name for c in self.controllers if c is not leader}
        t_kill = leader.kill()
        sid, address, want_maint, t_change = self.flip()
        if quick:
            leader.start()
            followers.add(leader.name)  # the restarted process may win too
        entry, first, t_seen = self.wait_applied(t_kill, followers, address, want_maint, a.round_timeout)
        r = {"round": i, "mode": "quick-restart" if quick else "kill", "victim": leader.name,
             "phase_s": round(phase, 3), "change": f"{sid} {'critical' if want_maint else 'passing'}",
             "change_after_kill_ms": round((t_change - t_kill) * 1000, 1)}
        if entry is None:
            r["failover_s"] = None
            r["timeout"] = True
            r["first_follower_apply"] = first and {k: first[k] for k in ("leader", "result", "time")}
        else:
            r["failover_s"] = round(entry["_end"] - t_kill, 3)
            r["seen_s"] = round(t_seen - t_kill, 3)
            r["writer"] = entry["leader"]
            r["changed"] = entry.get("changed", [])[:4]
            r["first_apply_was_the_change"] = first is entry
        r.update(self.breakdown(leader.name, t_kill, entry))
        if not quick:
            leader.start()
        return r

    def pause_round(self, i: int) -> dict:
        a = self.args
        leader = self.steady(60)
        phase = self.rng.uniform(0, a.ttl / 2)
        time.sleep(phase)
        if self.rec.holder() != leader.name or leader.metric("lbctl_leader") != 1.0:
            leader = self.steady(60)
        followers = {c.name for c in self.controllers if c is not leader}
        log_before = len(leader.log_text())
        t_pause = leader.pause()
        sid, address, want_maint, _ = self.flip()
        entry, first, t_seen = self.wait_applied(t_pause, followers, address, want_maint, a.round_timeout)
        r = {"round": i, "mode": "pause", "victim": leader.name, "phase_s": round(phase, 3),
             "change": f"{sid} {'critical' if want_maint else 'passing'}"}
        r["failover_s"] = None if entry is None else round(entry["_end"] - t_pause, 3)
        if entry is None:
            r["timeout"] = True
        r.update(self.breakdown(leader.name, t_pause, entry))
        # a second change, and wake the paused leader at once: it has something to write
        sid2, address2, want2, t_change2 = self.flip()
        t_resume = leader.resume()
        r["paused_s"] = round(t_resume - t_pause, 3)
        e2, _, _ = self.wait_applied(t_change2, followers, address2, want2, a.round_timeout)
        r["second_change_applied_by"] = e2 and e2["leader"]
        with contextlib.suppress(RuntimeError):
            wait_for(lambda: leader.metric("lbctl_leader") == 0.0, 20, f"{leader.name} to step down")
        time.sleep(2.0)  # let it act on whatever it saw when it woke
        text = leader.log_text()[log_before:]
        r["woken_step_down"] = [m.group(1) for m in re.finditer(r"is no longer the leader: (.*?); it stops", text)]
        r["woken_fence_refusals"] = len(re.findall(r"lost the leader lock|cannot confirm the leader lock", text))
        r["woken_writes"] = sum(1 for e in audit_entries(self.audit)
                                if e.get("leader") == leader.name and e["_end"] >= t_pause)
        r["woken_leader_metric"] = leader.metric("lbctl_leader")
        return r


# --------------------------------------------------------------------------- main

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kill -9 rounds")
    parser.add_argument("--pauses", type=int, default=3, help="SIGSTOP rounds after the kills (0: none)")
    parser.add_argument("--quick-restarts", type=int, default=0,
                        help="rounds that restart the killed leader at once (0: none)")
    parser.add_argument("--controllers", type=int, default=3)
    parser.add_argument("--instances", type=int, default=4, help="instances of service app")
    parser.add_argument("--ttl", type=int, default=10, help="election.ttl in s (10..)")
    parser.add_argument("--lock-delay", type=int, default=1, help="election.lock_delay in s")
    parser.add_argument("--wait", default="10s", help="source.consul.wait")
    parser.add_argument("--round-timeout", type=float, default=60.0, help="s a round may take before it counts as a timeout")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed on stderr)")
    args = parser.parse_args()
    if args.controllers < 2:
        sys.exit("--controllers must be at least 2")
    return args


def all_rounds(args, bench: Bench) -> list[dict]:
    """The kill rounds, then the pause rounds, then the quick restarts."""
    rounds: list[dict] = []
    plan = (["kill"] * args.kills + ["pause"] * args.pauses + ["quick"] * args.quick_restarts)
    for i, mode in enumerate(plan, 1):
        r = bench.pause_round(i) if mode == "pause" else bench.kill_round(i, quick=mode == "quick")
        rounds.append(r)
        extra = (f", woken: writes {r['woken_writes']}, fence refusals {r['woken_fence_refusals']}, "
                 f"step-down {r['woken_step_down']}") if mode == "pause" else ""
        log(f"round {i}/{len(plan)} {r['mode']} {r['victim']} (phase {r['phase_s']:.1f}s): "
            f"failover {r['failover_s']}s (critical +{r.get('down_to_critical_s')}s, "
            f"acquired +{r.get('down_to_acquired_s')}s by {r.get('new_leader')}, "
            f"applied +{r['failover_s']}s){extra}")
    return rounds


def failovers(rounds: list[dict], mode: str) -> list[float]:
    return [r["failover_s"] for r in rounds if r["mode"] == mode and r["failover_s"] is not None]


def report(rounds: list[dict], audit: dict, controllers: list[Controller], started: float) -> dict:
    """The detailed JSON object (printed first)."""
    kills = [r for r in rounds if r["mode"] == "kill"]

    def of_kills(key: str) -> dict:
        return summarize([r[key] for r in kills if key in r])

    logs = {c.name: c.log_text() for c in controllers}
    return {
        "rounds": rounds,
        "kill_failover_s": summarize(failovers(rounds, "kill")),
        "kill_down_to_critical_s": of_kills("down_to_critical_s"),
        "kill_last_pass_to_critical_s": of_kills("last_pass_to_critical_s"),
        "kill_invalidated_to_acquired_s": of_kills("invalidated_to_acquired_s"),
        "kill_acquired_to_apply_end_s": of_kills("acquired_to_apply_end_s"),
        "pause_failover_s": summarize(failovers(rounds, "pause")),
        "quick_restart_failover_s": summarize(failovers(rounds, "quick-restart")),
        "audit": audit,
        "log_counts": {n: {"leader": t.count(" is the leader"), "step_down": t.count("is no longer the leader"),
                           "fence_refusals": len(re.findall(r"lost the leader lock|cannot confirm the leader lock", t)),
                           "errors": t.count(" ERROR ")} for n, t in logs.items()},
        "cpus": os.cpu_count(), "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "total_s": round(time.monotonic() - started, 1),
    }


def summary(args, rounds: list[dict], audit: dict, total_s: float) -> dict:
    """The summary JSON object (the last line)."""
    kills = [r for r in rounds if r["mode"] == "kill"]
    pauses = [r for r in rounds if r["mode"] == "pause"]
    quicks = [r for r in rounds if r["mode"] == "quick-restart"]
    fo = failovers(rounds, "kill")
    target = args.ttl + args.lock_delay + 1
    out = {
        "kills": len(kills), "failover_p50_s": round(percentile(fo, 50), 2) if fo else None,
        "failover_max_s": round(max(fo), 2) if fo else None,
        "stale_writes": len(audit["stale"]),
        "ttl_s": args.ttl, "lock_delay_s": args.lock_delay, "target_s": target,
        "within_target": bool(fo) and len(fo) == len(kills) and max(fo) <= target,
        "timeouts": sum(1 for r in rounds if r.get("timeout")),
        "controllers": args.controllers, "audit_entries_checked": audit["checked"],
    }
    if pauses:
        pf = failovers(rounds, "pause")
        out.update({"pauses": len(pauses), "pause_failover_max_s": round(max(pf), 2) if pf else None,
                    "paused_leader_writes": sum(r["woken_writes"] for r in pauses),
                    "paused_leader_fence_refusals": sum(r["woken_fence_refusals"] for r in pauses)})
    if quicks:
        qf = failovers(rounds, "quick-restart")
        out.update({"quick_restarts": len(quicks), "quick_restart_failover_max_s": round(max(qf), 2) if qf else None})
    out["total_s"] = total_s
    return out


def run() -> None:
    args = parse_args()
    started = time.monotonic()
    d = Path(tempfile.mkdtemp(prefix="lbctl-failover-"))
    emu = haproxy = httpd = None
    controllers: list[Controller] = []
    try:
        emu = ConsulEmulator(check_update_interval=0)
        rec = Recorder(emu.store)
        emu.start()
        for k in range(args.instances):
            sid, address = instance(k)
            emu.add_service(POOL, service_id=sid, address=address, port=8080, status="passing")
        httpd = serve_ok()
        base = write_setup(d, emu.port, free_port(), httpd.server_address[1], args.wait)
        apply(d, d / "lbctl.yml", timeout=120)
        haproxy = start_haproxy(d, d / "haproxy.cfg")
        log(f"haproxy running on the config lbctl apply wrote; dir {d}")
        t_controllers = time.time()
        for n in range(args.controllers):
            c = Controller(d, f"ctl-{n + 1}", base, args.ttl, args.lock_delay)
            controllers.append(c)
            c.start()
        bench = Bench(args, d, emu, rec, controllers)
        leader = bench.steady(60)
        log(f"{args.controllers} controllers up; {leader.name} leads (ttl {args.ttl}s, lock-delay {args.lock_delay}s)")
        rounds = all_rounds(args, bench)
        bench.steady(60)
        time.sleep(1.0)
        audit = bench.stale(t_controllers)
        detail = report(rounds, audit, controllers, started)
        print(json.dumps(detail, indent=1))
        result_line(summary(args, rounds, audit, detail["total_s"]))
    finally:
        for c in controllers:
            stop_group(c.proc)
        stop_group(haproxy)
        if httpd is not None:
            httpd.shutdown()
        if emu is not None:
            emu.stop()
        if args.keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    procs.main(run)
