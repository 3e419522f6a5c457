"""The bench harness's pure pieces (lbctl_testkit.bench): percentiles, /proc parsing, the
configs it writes, the changes it makes; and that a bench killed with SIGTERM stops its children."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lbctl import config as lbctl_config
from lbctl_testkit.bench import accounting, changes, consul, election, procs, steps, watch

STAT = ("4242 (python3 -m lbctl) watch) S 1 4242 4242 0 -1 4194560 1500 0 0 0 "
        "250 50 7 3 20 0 3 0 100 1000000 5000 18446744073709551615")


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 11)]
    assert [accounting.percentile(values, q) for q in (0, 10, 50, 90, 99, 100)] == [1, 1, 5, 9, 10, 10]
    assert accounting.percentile([3.0, 1.0, 2.0], 50) == 2.0  # sorts first
    assert accounting.percentile([7.0], 99) == 7.0


def test_summaries_keep_the_keys_asked_for_in_order_and_are_empty_for_no_values():
    out = accounting.summarize([1.0, 2.0, 4.0], 3, ("min", "p50", "p90", "max", "mean"))
    assert list(out) == ["min", "p50", "p90", "max", "mean"]
    assert out == {"min": 1.0, "p50": 2.0, "p90": 4.0, "max": 4.0, "mean": 2.333}
    assert list(accounting.summarize([5.0])) == ["p50", "p90", "p99", "max", "min", "mean"]
    assert accounting.summarize([]) == {}


def test_cpu_ticks_add_own_and_reaped_children_time_even_with_a_parenthesis_in_the_name():
    assert accounting.stat_cpu_ticks(STAT) == 250 + 50 + 7 + 3


def test_cpu_seconds_of_this_process_grow_and_a_gone_process_has_none():
    before = accounting.cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    assert accounting.cpu_seconds(os.getpid()) > before
    assert accounting.cpu_seconds(2**22 + 1) == 0.0  # above the kernel's pid_max limit


def test_rss_now_and_peak_in_mb():
    status = "Name:\tpython3\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n"
    assert accounting.status_rss_mb(status) == {"now": 100.0, "peak": 200.0}
    assert set(accounting.rss_mb(os.getpid())) == {"now", "peak"}


@pytest.mark.parametrize("text, seconds", [("10s", 10.0), ("500ms", 0.5), ("1m", 60.0), (" 2 ", 2.0), ("0", 0.0)])
def test_durations(text, seconds):
    assert procs.duration(text) == seconds


def test_lbctl_config_reads_every_service_into_one_haproxy_target(tmp_path):
    raw = watch.lbctl_config(tmp_path, 8500, ["svc-0000", "svc-0001"], "10s", 18080, 0, runtime_api=False, slots=2)
    assert raw["source"]["consul"] == {"address": "127.0.0.1:8500", "wait": "10s",
                                       "services": ["svc-0000", "svc-0001"]}  # no max_connections: lbctl's default
    edge = raw["targets"]["edge"]
    assert (edge["kind"], edge["runtime_api"], edge["slots"]) == ("haproxy", False, 2)
    assert edge["probes"] == [{"url": "http://127.0.0.1:18080/"}]
    assert edge["stats_socket"] == str(tmp_path / "stats.sock")
    capped = watch.lbctl_config(tmp_path, 8500, [], "1s", 1, 50)
    assert capped["source"]["consul"]["max_connections"] == 50
    # lbctl reads it as written
    watch.write_inventory(tmp_path, 18080, 9000)
    loaded = lbctl_config.load(watch.write_config(tmp_path / "lbctl.yml", raw))
    assert loaded.consul.services == ("svc-0000", "svc-0001")
    assert list(loaded.targets) == ["edge"]


def test_the_inventory_routes_paths_to_real_services(tmp_path):
    watch.write_inventory(tmp_path, 18080, 9000, [{"path": "/r0/", "pool": "svc-0000"}])
    raw = yaml.safe_load((tmp_path / "inventory.yml").read_text())
    assert raw["listeners"]["web"] == {"address": "127.0.0.1", "port": 18080, "default_pool": "probe",
                                       "routes": [{"path": "/r0/", "pool": "svc-0000"}]}
    assert raw["pools"]["probe"]["members"] == [{"name": "b0", "address": "127.0.0.1", "port": 9000}]
    watch.write_inventory(tmp_path, 18080, 9000)
    assert "routes" not in yaml.safe_load((tmp_path / "inventory.yml").read_text())["listeners"]["web"]


def test_the_path_choice_sets_runtime_api():
    assert watch.path_keys("reload") == {"runtime_api": False}
    assert watch.path_keys("runtime") == {"runtime_api": True}


def test_flips_alternate_out_and_back_on_different_services():
    flips = changes.Flipper(services=10, instances=3, seed=1)
    seq = [flips.next() for _ in range(12)]
    assert [s for _, _, s in seq[:6]] == ["critical", "critical", "critical", "passing", "critical", "passing"]
    for (a, _, _), (b, _, _) in zip(seq, seq[1:]):
        assert a != b
    out = set()
    for svc, k, status in seq:
        (out.add if status == "critical" else out.remove)((svc, k))  # only what is out comes back
    assert 2 <= len(out) <= 3


def test_membership_changes_keep_every_pool_between_3_and_7_members_and_2_serving():
    ch = changes.Changes(real=2, instances=5, ports=list(range(9000, 9008)), seed=3)
    assert len(ch.initial()) == 10
    kinds = set()
    for _ in range(300):
        c = ch.next()
        kinds.add(c["kind"])
        for pool in ch.pools:
            assert 3 <= len(pool) <= 7
            assert sum(changes.Changes.serving(m) for m in pool.values()) >= 2
    assert kinds == {"add", "remove", "drain", "undrain", "reweight", "critical", "passing"}


def test_the_step_timer_times_each_step_and_reports_a_failing_one_once():
    timer = steps.Timer(catch=True)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("moved")

    for _ in range(3):
        assert timer.step("ok", lambda: 42) == 42
        assert timer.step("broken", broken) is None
    assert len(timer.wall["ok"]) == len(timer.cpu["ok"]) == 3
    assert calls == [1] and timer.errors == {"broken": "ValueError: moved"} and "broken" not in timer.wall
    timer.step("child", lambda: subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True), child=True)
    assert timer.cpu["child"][0] > 0  # the reaped child's CPU, not this thread's
    with pytest.raises(ValueError):
        steps.Timer().step("broken", broken)


def test_an_idle_window_of_zero_is_skipped():
    assert consul.idle_phase(None, 0.0, 10.0, os.getpid()) == {}


def test_audit_entries_start_duration_before_their_end(tmp_path):
    path = tmp_path / "audit.jsonl"
    assert election.audit_entries(path) == []
    path.write_text(json.dumps({"time": "2026-12-01T09:00:01+00:00", "duration_s": 0.5, "result": "applied"}) + "\n\n")
    (entry,) = election.audit_entries(path)
    assert entry["_end"] - entry["_start"] == 0.5


RUN_UNTIL_KILLED = """
import sys, time
from pathlib import Path
from lbctl_testkit.bench import procs
def run():
    child = procs.popen(["sleep", "300"], Path(sys.argv[1]))
    print(child.pid, flush=True)
    time.sleep(300)
procs.main(run)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_bench_stopped_with_sigterm_or_sigint_stops_the_process_groups_it_started(tmp_path, sig):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # started with SIGINT ignored, as a shell starts a background job: the bench still stops on it
    bench = subprocess.Popen([sys.executable, "-c", RUN_UNTIL_KILLED, str(tmp_path / "child.log")],
                             stdout=subprocess.PIPE, text=True, env=env,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        child = int(bench.stdout.readline())
        os.kill(child, 0)  # running
        bench.send_signal(sig)
        assert bench.wait(30) == 128 + sig
        with pytest.raises(ProcessLookupError):
            os.killpg(child, 0)  # its whole group is gone
    finally:
        bench.kill()
        bench.wait()


def test_the_render_bench_imports_neither_lbctl_nor_pytest():
    # a child's peak RSS (ru_maxrss) starts as the forking bench's own: render.py must stay small
    render = Path(__file__).resolve().parents[2] / "bench" / "render.py"
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('r', sys.argv[1]); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
            "print(sorted(n for n in sys.modules if n.split('.')[0] in ('lbctl', 'pytest', 'yaml', 'jinja2')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code, str(render)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
