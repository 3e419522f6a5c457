"""Each step of one apply, timed in the bench's own process with lbctl's functions on the same
config and HAProxy (reload path and runtime path), and the Consul leg of a change alone."""

from __future__ import annotations

import copy
import http.client
import json
import resource
import statistics
import threading
import time
from pathlib import Path

from lbctl_testkit.bench import lbctl_api
from lbctl_testkit.bench.accounting import percentile
from lbctl_testkit.bench.consul import Emulator, instance_id, service_name
from lbctl_testkit.bench.procs import HOST


def _snapshot(config_path: Path):
    """The session, its setup, the one target and every service's entries from Consul."""
    session = lbctl_api.Session(config_path, None, "edge", None, need_config=True)
    setup = lbctl_api.daemon.setup(session)
    client = lbctl_api.consul_client.Client(session.config.consul)
    try:
        t = time.perf_counter()
        entries, _problems = lbctl_api.consul_client.snapshot(client)
        seconds = time.perf_counter() - t
    finally:
        client.close()
    return setup, setup.targets[0], entries, seconds


def _pools(setup, entries: dict) -> tuple:
    """The policy and every service's pool, as the watch builds them."""
    policy = lbctl_api.consul_model.Policy(False)
    return policy, {name: lbctl_api.merge.service_pool(setup.parts, name, e, policy)[0] for name, e in entries.items()}


class Timer:
    """Wall and CPU seconds per named step (CPU: this thread's, or the reaped children's for a
    child process).  ``catch``: a step that raises is reported in ``errors`` and not run again."""

    def __init__(self, catch: bool = False) -> None:
        self.catch = catch
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}

    @staticmethod
    def children_cpu() -> float:
        """CPU seconds of this process's reaped children."""
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    def step(self, name: str, fn, child: bool = False):
        """Run and time ``fn()`` as step ``name``; its result (None when it failed and ``catch``)."""
        if name in self.errors:
            return None
        w, c, cc = time.perf_counter(), time.thread_time(), self.children_cpu()
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - report and go on
            if not self.catch:
                raise
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:200]
            return None
        self.wall.setdefault(name, []).append(time.perf_counter() - w)
        self.cpu.setdefault(name, []).append(self.children_cpu() - cc if child else time.thread_time() - c)
        return out


def step_times(config_path: Path, runs: int) -> dict:
    """Each step of one reload-path apply, timed here on the same config and the same running
    HAProxy (after ``lbctl watch`` stopped), for a change of one member's state.

    Per step: median wall ms and median CPU ms (this thread, or the child for ``haproxy -c``).
    The steps call lbctl's own functions, which may move: a step that cannot run says why.
    """
    deploy, guard, haproxy_cfg, files = lbctl_api.deploy, lbctl_api.guard, lbctl_api.haproxy_cfg, lbctl_api.files
    merge = lbctl_api.merge
    setup, target, entries, _ = _snapshot(config_path)
    policy, pools = _pools(setup, entries)
    name0 = sorted(entries)[0]
    flipped = copy.deepcopy(entries[name0])  # one instance critical: a one-line change against the live file
    for check_ in flipped[0].get("Checks") or []:
        if check_.get("ServiceID"):
            check_["Status"] = "critical"

    timer, state = Timer(catch=True), {}
    step, errors = timer.step, timer.errors

    def build():
        pools[name0] = merge.service_pool(setup.parts, name0, flipped, policy)[0]
        return merge.desired(setup.parts, setup.static, pools)

    for _ in range(runs):
        desired = step("1 build (one pool + the model)", build)
        metrics = lbctl_api.Metrics()
        step("1c metrics gauges (the changed pool)", lambda: metrics.pools(desired, {name0}))
        step("2a render (whole config)", lambda: target.render(desired))
        change = step("2b plan (read live file, lay out slots, render)", lambda: target.plan(desired))
        if change is None or change.noop:
            errors.setdefault("2b plan (read live file, lay out slots, render)", "no change to time")
            break
        step("1b guard (as deploy.guarded: what the live file and the candidate serve)",
             lambda: guard.check(target.name, *target.served_change(change), guard.Policy()))
        state["bytes"], state["lines"] = len(change.candidate), change.candidate.count("\n")
        step("2c runtime diff (parse both configs)", lambda: haproxy_cfg.runtime_changes(change.live, change.candidate))
        step("3 haproxy -c (child CPU)", lambda: target.check(change), child=True)
        scratch = target.path.with_name("bench-write.cfg")
        step("4 backup + atomic write (same size, to a scratch file)",
             lambda: (target.backups.save(target.path), files.atomic_write(scratch, change.candidate)))
        step("5a server-state dump + filter (the changed stretch)", lambda: target.save_server_states(change))
        step("5b master reload until the new worker shows (wall)",
             lambda: target.master.reload(timeout=target.settings.reload_timeout_ms / 1000))
        step("6 verify (show proc + probes)", lambda: target.verify(change))
        if hasattr(deploy, "changed"):
            step("7 audit diff of the change (difflib)", lambda: deploy.changed(change))
    target.path.with_name("bench-write.cfg").unlink(missing_ok=True)
    out: dict = {name: {"wall_ms": round(statistics.median(v) * 1000, 1),
                        "cpu_ms": round(statistics.median(timer.cpu[name]) * 1000, 1)}
                 for name, v in sorted(timer.wall.items())}
    if errors:
        out["not_timed"] = errors
    out["config_bytes"], out["config_lines"] = state.get("bytes"), state.get("lines")
    return out


def runtime_steps(config_path: Path, runs: int, backend: str) -> dict:
    """Each step of one runtime-path apply, timed here (median wall ms) with lbctl's own functions
    on the same config and the same running HAProxy, for a re-weight of one real member.  The
    weight is put back after each run (the same commands again), so HAProxy ends as it began."""
    guard, haproxy_cfg, slots, merge = lbctl_api.guard, lbctl_api.haproxy_cfg, lbctl_api.slots, lbctl_api.merge
    parse_servers_state, socket_command = lbctl_api.parse_servers_state, lbctl_api.socket_command
    setup, target, entries, snapshot_s = _snapshot(config_path)
    policy, pools = _pools(setup, entries)
    changed = copy.deepcopy(entries[backend])
    for e in changed:  # every serving instance: another weight
        svc = e["Service"]
        svc["Weights"] = {"Passing": 20 if (svc.get("Weights") or {}).get("Passing") != 20 else 19, "Warning": 1}
    stats = target.settings.options.stats_socket
    metrics, timer, info = lbctl_api.Metrics(), Timer(), {}
    step = timer.step
    target.plan(merge.desired(setup.parts, setup.static, pools))  # the file in place: its layout, as in the watch
    layout = target.layout
    for _ in range(runs):
        def build():
            pools[backend] = merge.service_pool(setup.parts, backend, changed, policy)[0]
            return merge.desired(setup.parts, setup.static, pools)
        desired = step("1 build (one pool + the model)", build)
        step("2 guard (every watched pool)",
             lambda: guard.refusals(guard.served(desired), guard.served(desired), guard.Policy()))
        step("3 metrics gauges (the changed pool)", lambda: metrics.pools(desired, {backend}))
        # A watch round meets the file in place (its previous candidate) unparsed, with the layout of that
        # candidate kept: so here, cold caches and the layout of the file in place.
        haproxy_cfg.parse.cache_clear()
        slots.by_backend.cache_clear()
        target.layout = layout
        change = step("4 plan (read live file, slots, render, compare)", lambda: target.plan(desired))
        live = step("4a of which: read the live file", target.live_text)
        haproxy_cfg.parse.cache_clear()
        if layout is not None:  # spare slots (targets.*.slots): the parts of the plan
            slots.by_backend.cache_clear()
            step("4b of which: parse the live file (slots.by_backend, cold)", lambda: slots.by_backend(live))
            slotted = step("4c of which: slot layout (the changed pool; the rest kept)",
                           lambda: slots.assign(desired, live, target.settings.slots, layout[1])[0])
            step("4d of which: render the whole config", lambda: target.render(slotted))
        if change.noop:
            return {"error": "no change to time"}
        diff = step("5 runtime_changes (changed lines only)",
                    lambda: haproxy_cfg.runtime_changes(change.live, change.candidate))
        if not diff:
            return {"error": f"not a runtime change: {diff!r}"}
        info["commands"] = sum(len(haproxy_cfg.commands(c)) for c in diff)
        cmds = ";".join(cmd for c in diff for cmd in haproxy_cfg.commands(c))
        step("6 stats socket: the batch of commands", lambda: socket_command(stats, cmds, timeout=5.0))
        step("7 stats socket: show servers state read-back",
             lambda: parse_servers_state(socket_command(stats, f"show servers state {backend}", timeout=5.0)))
        back = haproxy_cfg.runtime_changes(change.candidate, change.live) or []
        socket_command(stats, ";".join(cmd for c in back for cmd in haproxy_cfg.commands(c)), timeout=5.0)
        step("8 after live: haproxy -c", lambda: target.check(change))
    out = {name: round(statistics.median(v) * 1000, 2) for name, v in sorted(timer.wall.items())}
    before_live = [k for k in out if k[0] in "1234567" and k[1] == " "]
    out["sum of 1-7 (before the change is live)"] = round(sum(out[k] for k in before_live), 2)
    out["consul snapshot of every service, once (not on the path)"] = round(snapshot_s * 1000, 1)
    out.update(info)
    return out


def consul_leg(emu: Emulator, runs: int, svc: int) -> dict:
    """From right before a change in the emulator to a parked blocking query's answer read and
    decoded here (HTTP + JSON): the Consul part of the path, without lbctl (median, p99 ms)."""
    times = []
    for n in range(runs):
        conn = http.client.HTTPConnection(HOST, emu.port, timeout=30)
        conn.request("GET", f"/v1/health/service/{service_name(svc)}")
        resp = conn.getresponse()
        resp.read()
        index = resp.getheader("X-Consul-Index")
        got = []

        def block():
            conn.request("GET", f"/v1/health/service/{service_name(svc)}?index={index}&wait=10s")
            r = conn.getresponse()
            json.loads(r.read())
            got.append(time.monotonic())

        th = threading.Thread(target=block)
        th.start()
        time.sleep(0.05)
        t0 = emu.call("call", [("add_service", (service_name(svc),),
                                {"service_id": instance_id(svc, 0), "address": "10.99.0.1", "port": 8080,
                                 "weights": {"Passing": 1 + n % 2 + 1, "Warning": 1}})])
        th.join(15)
        conn.close()
        if got:
            times.append((got[0] - t0) * 1000)
    return {"runs": len(times), "p50": round(statistics.median(times), 2), "p99": round(percentile(times, 99), 2),
            "max": round(max(times), 2)} if times else {}
