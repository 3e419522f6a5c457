"""lbctl.targets.nginx_ctl helpers that need no running nginx."""

from __future__ import annotations

import os

import pytest

from lbctl.errors import ReloadError
from lbctl.targets.nginx import ctl as nginx_ctl

# Captured from nginx 1.22.1: a HUP whose new config listens on a port held by another socket.
BIND_FAILURE = """\
2026/11/27 14:20:39 [notice] 4952#4952: worker process 4954 exited with code 0
2026/11/27 14:20:42 [emerg] 4952#4952: bind() to 127.0.0.1:28096 failed (98: Address already in use)
2026/11/27 14:20:42 [notice] 4952#4952: try again to bind() after 500ms
2026/11/27 14:20:42 [alert] 5093#5093: *3 open socket #12 left in connection 4
2026/11/27 14:20:42 [emerg] 4952#4952: still could not bind()
"""


def test_log_errors_from_offset_and_pid(tmp_path):
    log = tmp_path / "error.log"
    log.write_text(BIND_FAILURE)
    assert len(nginx_ctl.log_errors(log, 0)) == 3
    mine = nginx_ctl.log_errors(log, 0, pid=4952)
    assert [line.split("] ", 1)[0][-5:] for line in mine] == ["emerg", "emerg"]
    two_lines = sum(len(line) for line in BIND_FAILURE.splitlines(keepends=True)[:2])
    assert nginx_ctl.log_errors(log, two_lines, pid=4952) == [BIND_FAILURE.splitlines()[-1]]
    assert nginx_ctl.log_errors(log, 10**9, pid=4952) == mine  # log rotated: read it all
    assert nginx_ctl.log_errors(tmp_path / "missing.log", 0) == []


def test_first_error_is_the_first_emerg_without_prefix():
    lines = ["2026/11/27 14:20:42 [alert] 4952#4952: something",
             "2026/11/27 14:20:42 [emerg] 4952#4952: bind() to 127.0.0.1:1 failed (98: Address already in use)"]
    assert nginx_ctl._first(lines) == "[emerg] bind() to 127.0.0.1:1 failed (98: Address already in use)"
    assert nginx_ctl._first(lines[:1]) == "[alert] something"


def test_not_running(tmp_path):
    pidfile = tmp_path / "nginx.pid"
    assert nginx_ctl.read_pid(pidfile) is None
    assert not nginx_ctl.is_running(pidfile)
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but not an nginx master
    assert nginx_ctl.read_pid(pidfile) == os.getpid()
    assert not nginx_ctl.is_running(pidfile)
    assert nginx_ctl.generation(pidfile) is None
    with pytest.raises(ReloadError, match="nginx is not running"):
        nginx_ctl.reload(pidfile, timeout=1)
    pidfile.write_text("garbage")
    assert nginx_ctl.read_pid(pidfile) is None


def test_proc_helpers_on_ourselves():
    assert nginx_ctl.alive(os.getpid())
    assert "python" in (nginx_ctl.title(os.getpid()) or "") or "pytest" in (nginx_ctl.title(os.getpid()) or "")
    assert nginx_ctl.children(os.getpid()) == []
    assert nginx_ctl.title(2**22 + 1) is None and not nginx_ctl.alive(2**22 + 1)
