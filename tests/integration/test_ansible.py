"""The Ansible role, ansible/roles/lbctl, through its own harness (tests/test.yml) with
ansible-playbook, against a real HAProxy and real backends on loopback, in a temp prefix:
the first converge changes and HAProxy serves the pools, the next one changes nothing,
check mode writes nothing (and shows lbctl plan's diff), and ansible-lint passes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from lbctl_testkit.support import SKIP_PREFIX, find_binary, free_port, http_get, requires_haproxy

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "ansible" / "roles" / "lbctl"
RECAP = re.compile(r"^localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def tool(name: str) -> str | None:
    """``name`` beside this interpreter (the test venv's bin/) or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


ANSIBLE_PLAYBOOK = tool("ansible-playbook")
pytestmark = [
    *requires_haproxy,
    pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason=f"{SKIP_PREFIX}: ansible-playbook not found; "
                       "pip install '.[test]' (ansible-core)"),
]


class Harness:
    """ansible-playbook runs of tests/test.yml into one prefix, with ports of our choosing."""

    def __init__(self, prefix: Path, scratch: Path) -> None:
        self.prefix = prefix
        self.ports = {"web": free_port(), "api": free_port()}
        self.backends = {name: free_port() for name in "abc"}
        self.vars = {"lbctl_test_prefix": str(prefix), "lbctl_test_haproxy": find_binary("haproxy"),
                     "lbctl_test_ports": self.ports, "lbctl_test_backends": self.backends,
                     "lbctl_test_stop": False, "lbctl_test_lifetime": 500}
        self.env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_HOME": str(scratch),
                    "ANSIBLE_LOCAL_TEMP": str(scratch / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
                    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.pop("ANSIBLE_CONFIG", None)

    def play(self, *args: str, timeout: float = 240, **overrides) -> tuple[dict[str, int], str]:
        """Run the harness; return the PLAY RECAP's counts and the whole output."""
        argv = [ANSIBLE_PLAYBOOK, "-i", str(ROLE / "tests" / "inventory"), "-c", "local", str(ROLE / "tests" / "test.yml"),
                "-e", json.dumps({**self.vars, **overrides}), *args]
        run = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        out = run.stdout + run.stderr
        recap = RECAP.search(out)
        assert recap, f"no PLAY RECAP (exit {run.returncode}):\n{out[-6000:]}"
        counts = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups())))
        counts["rc"] = run.returncode
        return counts, out

    def stop(self) -> None:
        subprocess.run([sys.executable, str(ROLE / "tests" / "harness.py"), "stop", str(self.prefix / "run")],
                       capture_output=True, timeout=60)

    def served(self, pool: str, requests: int = 8) -> Counter:
        """Which backends answered ``requests`` fresh-connection GETs on ``pool``'s listener."""
        return Counter(http_get(f"http://127.0.0.1:{self.ports[pool]}/").headers.get("x-backend") or "none"
                       for _ in range(requests))

    def files(self) -> dict[str, str]:
        """sha256 of every file the role or lbctl manage (not the venv, not the processes' run/)."""
        return {str(p.relative_to(self.prefix)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.prefix.rglob("*"))
                if p.is_file() and p.relative_to(self.prefix).parts[0] not in ("venv", "run")}


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("role") / "prefix", tmp_path_factory.mktemp("ansible"))
    try:
        yield h
    finally:
        h.stop()


def test_converge_is_idempotent_and_check_mode_writes_nothing(harness):
    first, out = harness.play(timeout=420)  # creates the venv and installs lbctl from this checkout
    assert first["rc"] == 0 and first["failed"] == 0, out[-6000:]
    assert first["changed"] > 0
    assert set(harness.served("web")) == {"a", "b"} and set(harness.served("api")) == {"c"}
    etc = harness.prefix / "etc"
    config = yaml.safe_load((etc / "lbctl" / "lbctl.yml").read_text())
    assert config["source"]["inventory"] == str(etc / "lbctl" / "inventory.yml")
    assert config["targets"]["edge"]["config"] == str(etc / "haproxy" / "haproxy.cfg")
    unit = (etc / "systemd" / "system" / "lbctl-watch.service").read_text()
    assert f"ExecStart={harness.prefix}/venv/bin/lbctl watch -c {etc}/lbctl/lbctl.yml\n" in unit
    # lbctl only on the host: no emulator (a fake BIG-IP with admin/admin), no test kit
    [site] = (harness.prefix / "venv" / "lib").glob("python3*/site-packages")
    assert (site / "lbctl" / "cli.py").exists() and not (site / "lbctl" / "emulators").exists()
    assert list(site.glob("lbctl_testkit*")) == []

    second, out = harness.play()
    assert (second["rc"], second["changed"], second["failed"]) == (0, 0, 0), out[-6000:]

    before = harness.files()
    check, out = harness.play("--check", "--diff")
    assert (check["rc"], check["changed"], check["failed"]) == (0, 0, 0), out[-6000:]
    assert harness.files() == before

    # Check mode with a new member: the inventory's diff and lbctl plan's diff of
    # haproxy.cfg are shown, and still nothing is written or served differently.
    more = {"lbctl_test_pools": {"web": ["a", "b", "c"], "api": ["c"]}}
    check, out = harness.play("--check", "--diff", **more)
    assert (check["rc"], check["failed"]) == (0, 0) and check["changed"] == 2, out[-6000:]
    assert f"+      port: {harness.backends['c']}" in out  # inventory.yml
    assert re.search(rf"^\+    server \S+ 127\.0\.0\.1:{harness.backends['c']} ", out, re.M), out[-6000:]
    assert f"{etc}/haproxy/haproxy.cfg (rendered)" in out
    assert harness.files() == before
    assert set(harness.served("web")) == {"a", "b"}

    # The same change for real, to the running HAProxy, then once more: nothing to do.
    applied, out = harness.play("--diff", **more)
    assert (applied["rc"], applied["failed"]) == (0, 0) and applied["changed"] == 2, out[-6000:]
    assert set(harness.served("web", 12)) == {"a", "b", "c"}
    again, out = harness.play(**more)
    assert (again["rc"], again["changed"], again["failed"]) == (0, 0, 0), out[-6000:]


def test_a_failed_apply_fails_the_task_with_lbctls_message(harness, tmp_path):
    lbctl = harness.prefix / "venv" / "bin" / "lbctl"
    if not lbctl.exists():
        pytest.skip("the converge test did not install lbctl")
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(
        {"listeners": {"web": {"address": "127.0.0.1", "port": free_port(), "default_pool": "web"}},
         "pools": {"web": {"members": [{"name": "a", "address": "127.0.0.1", "port": 70000}]}}}))
    (tmp_path / "lbctl.yml").write_text(yaml.safe_dump(
        {"source": {"inventory": "inventory.yml"}, "state_dir": "state",
         "targets": {"edge": {"kind": "haproxy", "config": str(tmp_path / "haproxy.cfg"),
                              "master_socket": str(tmp_path / "master.sock")}}}))
    for mode in ([], ["--check"]):
        run = subprocess.run(
            [tool("ansible"), "localhost", "-i", str(ROLE / "tests" / "inventory"), "-c", "local", "-M", str(ROLE / "library"),
             "-m", "lbctl_apply", "-a", f"lbctl={lbctl} config={tmp_path / 'lbctl.yml'}", *mode],
            cwd=ROOT, env=harness.env, capture_output=True, text=True, timeout=120)
        assert run.returncode != 0
        assert "FAILED!" in run.stdout
        assert "pools.web.members[0].port: must be an integer from 1 to 65535 (got 70000)" in run.stdout
        assert not (tmp_path / "haproxy.cfg").exists()


def test_the_removal_guard_fails_the_task_unless_forced(harness, tmp_path):
    lbctl = harness.prefix / "venv" / "bin" / "lbctl"
    if not lbctl.exists():
        pytest.skip("the converge test did not install lbctl")
    (tmp_path / "inventory.yml").write_text("")  # an empty (truncated) inventory
    (tmp_path / "lbctl.yml").write_text(yaml.safe_dump(
        {"source": {"inventory": "inventory.yml"}, "state_dir": "state",
         "targets": {"edge": {"kind": "haproxy", "config": str(tmp_path / "haproxy.cfg"),
                              "master_socket": str(tmp_path / "master.sock")}}}))
    args = f"lbctl={lbctl} config={tmp_path / 'lbctl.yml'}"
    for extra in ("", " force=true"):
        run = subprocess.run(
            [tool("ansible"), "localhost", "-i", str(ROLE / "tests" / "inventory"), "-c", "local", "-M", str(ROLE / "library"),
             "-m", "lbctl_apply", "-a", args + extra],
            cwd=ROOT, env=harness.env, capture_output=True, text=True, timeout=120)
        if not extra:
            assert run.returncode != 0 and "FAILED!" in run.stdout
            assert "edge: refusing the change: it would leave nothing to serve" in run.stdout
            assert not (tmp_path / "haproxy.cfg").exists()
        else:
            assert run.returncode == 0, run.stdout
            assert (tmp_path / "haproxy.cfg").exists()


def test_ansible_lint_passes():
    lint = tool("ansible-lint")
    if lint is None:
        pytest.skip(f"{SKIP_PREFIX}: ansible-lint not found; pip install '.[test]'")
    env = {**os.environ, "NO_COLOR": "1",  # it runs ansible-playbook --syntax-check: ours, beside it
           "PATH": f"{Path(lint).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([lint, "--offline", "ansible/roles/lbctl", "ansible/playbook.yml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
