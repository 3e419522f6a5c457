"""The changes the benchmarks make in Consul and how each is seen live: health flips on fresh
services (propagation), membership changes on real services (runtime), the time from a change
to HAProxy showing it, and the legs of that path from a trace."""

from __future__ import annotations

import bisect
import contextlib
import random
import statistics
import time
from collections import deque
from pathlib import Path

from lbctl_testkit.bench.accounting import percentile
from lbctl_testkit.bench.consul import Emulator, instance_address, instance_id, service_name
from lbctl_testkit.bench.haproxy import FMAINT, admin_state, shows
from lbctl_testkit.bench.procs import HOST, log, mtime


class Flipper:
    """Chooses the flips: critical on a fresh service, alternating with passing on the
    instance out the longest (two or three are out at a time; in the steady state it
    went out five flips earlier), so consecutive flips touch different services."""

    def __init__(self, services: int, instances: int, seed: int) -> None:
        rng = random.Random(seed)
        self.order = list(range(services))
        rng.shuffle(self.order)
        self.rng = rng
        self.instances = instances
        self.fresh = 0
        self.down: deque[tuple[int, int]] = deque()

    def next(self) -> tuple[int, int, str]:
        """The next flip: service, instance, new status."""
        if len(self.down) >= 2 and (len(self.down) >= 3 or self.fresh >= len(self.order)):
            svc, k = self.down.popleft()
            return svc, k, "passing"
        if self.fresh >= len(self.order):
            raise RuntimeError("no fresh service left")
        svc, k = self.order[self.fresh], self.rng.randrange(self.instances)
        self.fresh += 1
        self.down.append((svc, k))
        return svc, k, "critical"


def one_flip(emu: Emulator, stats: Path, record: Path, svc: int, k: int, status: str, poll: float,
             timeout: float) -> dict:
    """Flip one instance in Consul; the ms until HAProxy shows it (live) and until lbctl recorded the round (done)."""
    backend, server, address = service_name(svc), instance_id(svc, k), instance_address(svc, k)
    want_maint = status != "passing"
    before = mtime(record)
    t0 = emu.call("flip", server, status)
    deadline = t0 + timeout
    live = done = None
    polls = 0
    while time.monotonic() < deadline:
        if live is None:
            state = admin_state(stats, backend, address)
            polls += 1
            if state is not None and bool(state & FMAINT) == want_maint:
                live = time.monotonic()
        if live is not None and mtime(record) != before:
            done = time.monotonic()
            break
        time.sleep(poll)
    return {"service": backend, "server": server, "status": status, "t0": t0,
            "live_ms": None if live is None else (live - t0) * 1000,
            "done_ms": None if done is None else (done - t0) * 1000, "polls": polls}


class Changes:
    """Membership changes on the real services, in turn.  Tracks what Consul holds and
    says, per change, the Consul calls and what HAProxy must show for which address:port."""

    def __init__(self, real: int, instances: int, ports: list[int], seed: int) -> None:
        self.rng = random.Random(seed)
        self.ports = ports
        self.turn = 0
        self.serial = 0
        # per service: instance id -> {port, weight, drain, health}
        self.pools = [{instance_id(r, k): {"port": ports[k % len(ports)], "weight": 10, "drain": False,
                                           "health": "passing"} for k in range(instances)} for r in range(real)]

    def register_call(self, r: int, iid: str) -> tuple:
        """The emulator call that (re-)registers instance ``iid`` of real service ``r`` as tracked."""
        m = self.pools[r][iid]
        return ("add_service", (service_name(r),),
                {"service_id": iid, "address": HOST, "port": m["port"], "status": m["health"],
                 "weights": {"Passing": m["weight"], "Warning": 1},
                 "meta": {"lb-state": "drain"} if m["drain"] else {}})

    def initial(self) -> list[tuple]:
        """The calls that register every real instance at the start."""
        return [self.register_call(r, iid) for r in range(len(self.pools)) for iid in sorted(self.pools[r])]

    @staticmethod
    def serving(m: dict) -> bool:
        """Whether a tracked member serves (passing, not draining)."""
        return m["health"] == "passing" and not m["drain"]

    def next(self) -> dict:
        """The next change: its kind, backend, instance, port, what HAProxy must show, the emulator call."""
        r = self.turn % len(self.pools)
        self.turn += 1
        pool = self.pools[r]
        serving = [i for i, m in pool.items() if self.serving(m)]
        used = {m["port"] for m in pool.values()}
        free = [p for p in self.ports if p not in used]
        spare = len(serving) > 2  # one serving member may stop
        options = []
        if len(pool) < 7 and free:
            options.append("add")
        if len(pool) > 3 and spare:
            options.append("remove")
        if spare:
            options += ["drain", "critical"]
        options += ["reweight"] * bool(serving)
        options += ["undrain"] * any(m["drain"] and m["health"] == "passing" for m in pool.values())
        options += ["passing"] * any(m["health"] != "passing" for m in pool.values())
        kind = self.rng.choice(options)
        if kind == "add":
            self.serial += 1
            iid = f"{service_name(r)}-n{self.serial}"
            pool[iid] = {"port": self.rng.choice(free), "weight": self.rng.randint(1, 20), "drain": False,
                         "health": "passing"}
            call = self.register_call(r, iid)
        elif kind == "remove":  # a passing member (serving or draining): one in maintenance shows no change
            iid = self.rng.choice(sorted(i for i, m in pool.items() if m["health"] == "passing"))
            call = ("remove_service", (iid,), {})
        elif kind in ("drain", "reweight", "critical"):
            iid = self.rng.choice(sorted(serving))
            m = pool[iid]
            if kind == "drain":
                m["drain"] = True
                call = self.register_call(r, iid)
            elif kind == "reweight":
                m["weight"] = self.rng.choice([w for w in range(1, 21) if w != m["weight"]])
                call = self.register_call(r, iid)
            else:
                m["health"] = "critical"
                call = ("set_service_health", (iid, "critical"), {})
        elif kind == "undrain":
            iid = self.rng.choice(sorted(i for i, m in pool.items() if m["drain"] and m["health"] == "passing"))
            pool[iid]["drain"] = False
            call = self.register_call(r, iid)
        else:  # passing
            iid = self.rng.choice(sorted(i for i, m in pool.items() if m["health"] != "passing"))
            pool[iid]["health"] = "passing"
            call = ("set_service_health", (iid, "passing"), {})
        m = pool.pop(iid) if kind == "remove" else pool[iid]
        # what HAProxy must show for this address:port: None (nothing serving there) or the user weight
        want = None if kind == "remove" or m["health"] != "passing" else (0 if m["drain"] else m["weight"])
        return {"kind": kind, "backend": service_name(r), "instance": iid, "port": m["port"], "want": want,
                "call": call}


def one_change(emu: Emulator, stats: Path, record: Path, change: dict, poll: float, timeout: float) -> dict:
    """Make one change in Consul; the ms until HAProxy shows it (live) and until lbctl recorded the round (done)."""
    before = mtime(record)
    t0 = emu.call("call", [change["call"]])
    deadline = t0 + timeout
    live = done = None
    while time.monotonic() < deadline:
        if live is None and shows(stats, change["backend"], change["port"], change["want"]):
            live = time.monotonic()
        if live is not None and mtime(record) != before:
            done = time.monotonic()
            break
        time.sleep(poll)
    return {"kind": change["kind"], "backend": change["backend"], "instance": change["instance"], "t0": t0,
            "live_ms": None if live is None else (live - t0) * 1000,
            "done_ms": None if done is None else (done - t0) * 1000}


def series(one, count: int, gap: float, every: int, label: str) -> list[dict]:
    """``count`` changes one at a time (``one()`` makes one and returns its result), ``gap`` s
    apart, with a progress line every ``every`` (their live p50 and max)."""
    results = []
    for i in range(count):
        results.append(one())
        if (i + 1) % every == 0:
            recent = [x["live_ms"] for x in results[-every:] if x["live_ms"] is not None]
            log(f"{label}{i + 1}/{count}: last {every} live p50 {statistics.median(recent):.1f} ms, "
                f"max {max(recent):.1f} ms" if recent else f"{label}{i + 1}: none went live")
        time.sleep(gap)
    return results


# (leg, from, to): each label's first time-stamp after the change (t0: right before it, in
# the emulator; live: the poll that saw it).  The legs after "live" keep the controller busy:
# the next change waits for them.
LEGS = (("emulator wakes the feed, encodes, sends; lbctl reads the body", "t0", "decode>"),
        ("checks answer: the changed stretch decoded", "decode>", "decode<"),
        ("checks answer: the rest of the HTTP call", "decode<", "checks<"),
        ("feed: compare with the book, queue the service", "feed>", "queued>"),
        ("a reader picks the service up", "queued>", "reader>"),
        ("reader: GET /v1/health/service/<name>", "reader>", "reader<"),
        ("reader answer handled, controller told", "reader<", "changed>"),
        ("controller wakes up", "changed>", "round>"),
        ("round: build, guard, gauges, deploy lock", "round>", "plan>"),
        ("plan", "plan>", "plan<"),
        ("plan done to runtime (check, running, fence)", "plan<", "runtime>"),
        ("of which: check", "check>", "check<"),
        ("of which: running (master CLI show proc)", "running>", "running<"),
        ("runtime: the command batch", "runtime>", "socket<"),
        ("runtime: the read-back", "socket<", "runtime<"),
        ("poll sees it (from the runtime read-back)", "runtime<", "live"),
        ("after live: verify (show proc, probes, loaded.json)", "verify>", "verify<"),
        ("after live: record (last-apply.json, audit, metrics)", "record>", "record<"),
        ("whole round (the controller is busy)", "round>", "round<"))


def trace_legs(path: Path, results: list[dict]) -> dict:
    """Median and p99 ms of each leg (over the changes where both of its ends were found, in
    order), from each change to the next one; and how often a feed waited for its throttle."""
    events = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            label, _, t = line.partition(" ")
            events.append((float(t), label))
    events.sort()
    legs: dict[str, list[float]] = {name: [] for name, _, _ in LEGS}
    times = [t for t, _ in events]
    throttled = 0
    for r, after in zip(results, results[1:] + [None]):
        if r["live_ms"] is None:
            continue
        at = {"t0": r["t0"], "live": r["t0"] + r["live_ms"] / 1000}
        end = after["t0"] if after else at["live"] + 1.0
        for t, label in events[bisect.bisect_left(times, r["t0"]):bisect.bisect_right(times, end)]:
            at.setdefault(label, t)  # the first of each after the change
            throttled += label == "throttle>"
        for name, a, b in LEGS:
            if a in at and b in at and at[b] >= at[a]:
                legs[name].append((at[b] - at[a]) * 1000)
    return {"changes": len(results), "throttle_waits": throttled,
            **{name: {"n": len(v), "p50": round(statistics.median(v), 2), "p99": round(percentile(v, 99), 2)}
               for name, v in legs.items() if v}}
