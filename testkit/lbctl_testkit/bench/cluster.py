"""The failover benchmark's controllers as a group: waiting for one leader and ready followers,
changes in Consul, the audit entry that applies one, the steps of a failover, stale writes."""

from __future__ import annotations

import random
import time
from pathlib import Path

from lbctl_testkit.bench.election import Controller, Flips, Recorder, audit_entries, maint
from lbctl_testkit.bench.procs import wait_for


class Cluster:
    """The controllers of one run, the emulator (in this process) and its election hooks."""

    def __init__(self, args, d: Path, emu, rec: Recorder, controllers: list[Controller]) -> None:
        self.args, self.d, self.emu, self.rec = args, d, emu, rec
        self.controllers = controllers
        self.audit = d / "audit.jsonl"
        self.stats = d / "stats.sock"
        self.flips = Flips(args.instances)
        self.rng = random.Random(args.seed)

    def by_name(self, name: str) -> Controller:
        """The controller called ``name``."""
        return next(c for c in self.controllers if c.name == name)

    def steady(self, timeout: float) -> Controller:
        """Exactly one leader (metrics and the Consul key agree), every other one a ready
        follower with a live session.  Returns the leader."""
        state = {}

        def check():
            live = [c for c in self.controllers if c.alive()]
            if len(live) != len(self.controllers):
                dead = [c.name for c in self.controllers if not c.alive()]
                tails = [c.log_text()[-1500:] for c in self.controllers if not c.alive()]
                raise RuntimeError(f"controllers exited: {dead}: {tails}")
            flags = {c.name: c.metric("lbctl_leader") for c in live}
            state["flags"] = flags
            leaders = [n for n, v in flags.items() if v == 1.0]
            if len(leaders) != 1 or any(v is None for v in flags.values()):
                return None
            if self.rec.holder() != leaders[0]:
                return None
            if not {c.name for c in live} <= self.rec.sessions():
                return None
            if not all(c.ready() for c in live):
                return None
            return self.by_name(leaders[0])

        try:
            return wait_for(check, timeout, "one leader and ready followers", 0.1)
        except RuntimeError as exc:
            holder = self.rec.holder()
            raise RuntimeError(f"{exc}; last leader flags {state.get('flags')}, key holder {holder}") from None

    def flip(self) -> tuple[str, str, bool, float]:
        """The next flip in Consul: instance id, address, whether it goes out, wall time before it."""
        sid, address, status = self.flips.next()
        t = time.time()
        self.emu.set_service_health(sid, status)
        return sid, address, status == "critical", t

    def wait_applied(self, since: float, writers: set[str], address: str, want_maint: bool, timeout: float):
        """The first audit entry (end >= since) with result applied by one of ``writers``
        after which HAProxy serves ``want_maint`` for ``address``."""
        deadline = time.monotonic() + timeout
        seen = 0
        first_any = None
        while time.monotonic() < deadline:
            entries = [e for e in audit_entries(self.audit) if e["_end"] >= since - 0.002]
            for e in entries[seen:]:
                if e["result"] == "applied" and e.get("leader") in writers:
                    first_any = first_any or e
                    state = maint(self.stats, address)
                    if state == want_maint:
                        return e, first_any, time.time()
            seen = len(entries)
            time.sleep(0.02)
        return None, first_any, None

    def breakdown(self, victim: str, t_down: float, entry: dict | None) -> dict:
        """Kill -> check critical -> session invalidated -> key acquired -> apply start -> end."""
        out: dict = {}
        last_pass = self.rec.before(t_down, "pass", victim)
        crit = self.rec.after(t_down, "critical", victim)
        inval = self.rec.after(t_down, "invalidate", victim)
        acq = self.rec.after(t_down, "acquire")
        if last_pass is not None:
            out["last_pass_before_down_s"] = round(t_down - last_pass, 3)
        if crit:
            out["down_to_critical_s"] = round(crit[0] - t_down, 3)
            if last_pass is not None:
                out["last_pass_to_critical_s"] = round(crit[0] - last_pass, 3)
        if inval:
            out["down_to_invalidated_s"] = round(inval[0] - t_down, 3)
        if acq:
            out["down_to_acquired_s"] = round(acq[0] - t_down, 3)
            out["new_leader"] = acq[1]
            if inval:
                out["invalidated_to_acquired_s"] = round(acq[0] - inval[0], 3)
        if entry is not None:
            out["apply_start_s"] = round(entry["_start"] - t_down, 3)
            out["apply_duration_s"] = entry.get("duration_s")
            if acq:
                out["acquired_to_apply_end_s"] = round(entry["_end"] - acq[0], 3)
        return out

    def stale(self, since: float) -> dict:
        """Audit entries since ``since`` written without the key (stale) or losing it meanwhile (overlaps)."""
        stale, overlaps, checked = [], [], 0
        for e in audit_entries(self.audit):
            if e["_end"] < since:
                continue
            checked += 1
            who = e.get("leader")
            held = self.rec.holder_at(e["_start"] + 0.002)
            c = next((c for c in self.controllers if c.name == who), None)
            down = c.was_down(e["_start"]) if c else None
            brief = {"leader": who, "time": e["time"], "result": e["result"], "holder_at_start": held, "down": down}
            if who is None or held != who or down:
                stale.append(brief)
            elif self.rec.released_between(who, e["_start"] + 0.002, e["_end"]):
                overlaps.append(brief)
        return {"checked": checked, "stale": stale, "overlaps": overlaps}
