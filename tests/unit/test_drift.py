"""Drift: which file a running process loaded (pure rules), and what /proc tells."""

import subprocess
import sys
import time

from lbctl import drift
from lbctl.targets import procfs

PROC = drift.Process((100, 3, 101, 102), started=50.0)


def test_the_same_process_runs_the_recorded_file():
    loaded = drift.record([1, 2, 3], PROC)
    assert drift.behind(loaded, PROC, [1, 2, 3], modified=99.0) is False  # the record wins over times
    assert drift.behind(loaded, PROC, [4, 5, 6], modified=10.0) is True


def test_another_process_loaded_the_file_as_it_was_when_it_started():
    loaded = drift.record([1, 2, 3], drift.Process((100, 2, 99)))
    assert drift.behind(loaded, PROC, [4, 5, 6], modified=49.0) is False
    assert drift.behind(loaded, PROC, [4, 5, 6], modified=51.0) is True
    assert drift.behind(None, PROC, [4, 5, 6], modified=50.01) is False  # within a clock tick: no claim
    assert drift.behind(None, drift.Process((1,)), [4, 5, 6], modified=51.0) is None


def test_report_lines():
    last = {"hash_after": "a" * 64}
    assert drift.report("haproxy", "/x.cfg", False, last, "a" * 64) == []
    assert drift.report("haproxy", "/x.cfg", True, last, "b" * 64) == [
        "/x.cfg is ahead of the running haproxy, which loaded an older version (apply or lbctl reload makes it "
        "load this one)",
        f"/x.cfg was changed outside lbctl since the last apply (sha256 {'b' * 12}, lbctl left {'a' * 12})"]
    assert drift.report("nginx", "/x.conf", None, None, "b" * 64) == []


def test_procfs_finds_only_the_program_running_the_config(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text("")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(config)])
    try:
        assert procfs.running_with("haproxy", config) == []  # the config among its arguments is not enough
        assert procfs.started(other.pid) <= time.clock_gettime(time.CLOCK_BOOTTIME)
        assert abs(procfs.modified(config) - time.clock_gettime(time.CLOCK_BOOTTIME)) < 5
    finally:
        other.kill()
        other.wait()
    assert procfs.started(other.pid) is None
