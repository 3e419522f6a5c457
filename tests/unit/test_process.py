"""lbctl.targets.process.run: results, missing binaries, timeouts that kill the group."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from lbctl.errors import CommandError
from lbctl.targets.nginx import ctl as nginx_ctl
from lbctl.targets.process import run
from lbctl_testkit.support.procs import wait_until


def test_non_zero_exit_is_returned_with_output():
    r = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
            timeout=30)
    assert (r.returncode, r.stdout, r.stderr, r.ok) == (3, "out\n", "err\n", False)
    assert r.output == "err\nout"


def test_input_and_env():
    r = run([sys.executable, "-c", "import os, sys; print(sys.stdin.read() + os.environ['LBCTL_X'])"],
            timeout=30, input="in-", env={"LBCTL_X": "env"})
    assert r.ok and r.stdout == "in-env\n"


@pytest.mark.skipif(not Path("/usr/sbin/haproxy").exists(), reason="Debian's haproxy is not installed")
def test_a_bare_name_is_found_in_sbin_off_the_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a normal user's PATH on Debian
    assert run(["haproxy", "-v"], timeout=10).stdout.startswith("HAProxy version")


def test_missing_binary():
    with pytest.raises(CommandError, match="no-such-binary-lbctl: command not found"):
        run(["no-such-binary-lbctl", "-v"], timeout=5)


def test_timeout_kills_the_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(p.pid))
        print("started", flush=True)
        time.sleep(60)
    """)
    # long enough for two interpreters to start on a loaded 2-core machine
    with pytest.raises(CommandError, match=r"^timed out after 5s: "):
        run([sys.executable, "-c", script], timeout=5)
    grandchild = int(Path(pidfile).read_text())
    # SIGKILL is sent; on a loaded machine the grandchild may take a moment to die
    wait_until(lambda: not nginx_ctl.alive(grandchild), 10, "the killed grandchild to be gone")
