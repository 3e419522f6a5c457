"""Two ``lbctl watch`` controllers with leader election (the Consul emulator's
sessions and KV locks), a shared target, metrics, health endpoints, JSON logs
and the audit log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from lbctl.audit import read as read_audit
from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl.targets import files
from lbctl_testkit.support import Backend, free_port, http_get, requires_haproxy, wait_until
from lbctl_testkit.support.stack import Stack

pytestmark = requires_haproxy
TOKEN = "ha-s3cret-token"


class Controller:
    """One ``lbctl watch`` process with its own name, config file and status port."""

    def __init__(self, stack: Stack, name: str, log_format: str = "human"):
        self.name, self.stack = name, stack
        self.port = free_port()
        settings = json.loads(json.dumps(stack.settings))
        settings["election"] = {"name": name, "ttl": "10s", "lock_delay": "0s"}
        settings["metrics"] = {"listen": f"127.0.0.1:{self.port}"}
        self.config = stack.dir / f"lbctl-{name}.yml"
        self.config.write_text(yaml.safe_dump(settings))
        self.log = stack.dir / f"watch-{name}.log"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lbctl", "watch", "-c", str(self.config), "--log-format", log_format],
                stdout=log, stderr=log, start_new_session=True, env={**os.environ, "LBCTL_TEST_TOKEN": TOKEN})

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()

    def get(self, path: str):
        return http_get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def metric(self, line_start: str) -> float | None:
        for line in self.get("/metrics").body.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    with contextlib.ExitStack() as es:
        consul = es.enter_context(ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0,
                                                 acl_tokens={TOKEN: "write"}))
        backends = {n: es.enter_context(Backend(n)) for n in "abc"}
        stack = Stack(tmp_path, "haproxy")
        stack.settings["targets"]["edge"]["shared"] = True
        stack.settings["audit_log"] = "audit.jsonl"
        stack.inventory([])
        stack.use_consul(consul.port, token_env="LBCTL_TEST_TOKEN")

        def register(name):
            consul.add_service("app", service_id=f"app-{name}", address="127.0.0.1", port=backends[name].port)

        register("a")
        os.environ["LBCTL_TEST_TOKEN"] = TOKEN
        try:
            assert stack.run("apply").exit_code == 0
        finally:
            del os.environ["LBCTL_TEST_TOKEN"]
        es.enter_context(stack.running())
        controllers = []
        try:
            yield consul, stack, register, controllers
        finally:
            for c in controllers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(c.proc.pid, signal.SIGCONT)
                c.stop()


def leader_and_follower(stack: Stack, controllers: list) -> tuple[Controller, Controller]:
    """Start ctl-a, wait until it leads, then ctl-b, until it runs as a follower."""
    a = Controller(stack, "ctl-a")
    controllers.append(a)
    wait_until(lambda: a.logged("ctl-a is the leader"), 10, "ctl-a to lead")
    b = Controller(stack, "ctl-b")
    controllers.append(b)
    wait_until(lambda: b.metric("lbctl_leader ") == 0.0, 10, "ctl-b to run as a follower", ignore=(OSError,))
    return a, b


def writers(stack: Stack) -> list[str]:
    return [e["leader"] for e in read_audit(stack.dir / "audit.jsonl")]


def test_only_the_leader_writes_and_a_follower_takes_over_after_kill_9(cluster):
    consul, stack, register, controllers = cluster
    a, b = leader_and_follower(stack, controllers)
    register("b")
    wait_until(lambda: set(stack.spread(12)) == {"a", "b"}, 10, "app-b to take traffic")
    # the first entry is the fixture's one-shot apply; the audit line follows the traffic by a moment
    wait_until(lambda: writers(stack)[1:] == ["ctl-a"], 10, "ctl-a's audit entry")
    assert not b.logged("applied")
    os.kill(a.proc.pid, signal.SIGKILL)
    consul.advance(11)  # one TTL: ctl-a no longer passes its check, which invalidates its session
    wait_until(lambda: b.logged("ctl-b is the leader"), 15, "ctl-b to take over")
    register("c")
    wait_until(lambda: set(stack.spread(12)) == {"a", "b", "c"}, 10, "ctl-b to apply app-c")
    # ctl-b writes app-c, and app-b too if ctl-a was killed before its file write (write_delay)
    wait_until(lambda: writers(stack)[1] == "ctl-a" and set(writers(stack)[2:]) == {"ctl-b"}, 10,
               "ctl-b's audit entry")
    wait_until(lambda: all(f"server app-{n} " in stack.live.read_text() for n in "abc"), 10, "ctl-b's file write")
    assert b.metric("lbctl_leader ") == 1.0


def test_a_paused_leader_writes_nothing_after_it_lost_the_lock(cluster):
    consul, stack, register, controllers = cluster
    a, b = leader_and_follower(stack, controllers)
    os.kill(a.proc.pid, signal.SIGSTOP)  # a leader frozen in a long pause
    consul.advance(11)
    wait_until(lambda: b.logged("ctl-b is the leader"), 15, "ctl-b to take over")
    register("b")
    wait_until(lambda: set(stack.spread(12)) == {"a", "b"}, 10, "ctl-b to apply app-b")
    os.kill(a.proc.pid, signal.SIGCONT)  # it wakes up, sees the change, and must not write it
    wait_until(lambda: a.logged("ctl-a is no longer the leader"), 15, "ctl-a to step down")
    register("c")
    wait_until(lambda: set(stack.spread(12)) == {"a", "b", "c"}, 10, "ctl-b to apply app-c")
    wait_until(lambda: len(writers(stack)) == 3, 10, "ctl-b's audit entries")
    assert writers(stack)[1:] == ["ctl-b", "ctl-b"]
    assert a.stop() == 0


def test_metrics_health_audit_and_json_logs(cluster):
    consul, stack, register, controllers = cluster
    a = Controller(stack, "ctl-a", log_format="json")
    controllers.append(a)
    wait_until(lambda: a.get("/readyz").status == 200, 10, "ctl-a to be ready", ignore=(OSError,))
    register("b")
    wait_until(lambda: set(stack.spread(12)) == {"a", "b"}, 10, "app-b to take traffic")
    wait_until(lambda: a.metric('lbctl_applies_total{result="applied",target="edge"}') == 1.0, 10, "the apply metric")
    wait_until(lambda: len(read_audit(stack.dir / "audit.jsonl")) == 2, 10, "the audit entry")
    assert a.get("/healthz").status == 200
    assert a.metric("lbctl_leader ") == 1.0
    assert a.metric('lbctl_pool_members{pool="app",state="enabled"}') == 2.0
    assert a.metric('lbctl_renders_total{result="ok",target="edge"}') >= 1.0
    assert a.metric("lbctl_discovery_data_age_seconds ") is not None
    assert a.metric('lbctl_apply_duration_seconds_count{target="edge"}') == 1.0
    assert a.metric('lbctl_last_successful_apply_timestamp_seconds{target="edge"}') > 0
    entries = read_audit(stack.dir / "audit.jsonl")
    last = entries[-1]
    assert (last["target"], last["action"], last["result"], last["leader"]) == ("edge", "apply", "applied", "ctl-a")
    assert last["hash_before"] == entries[-2]["hash_after"]
    # a runtime API change: the file follows within write_delay
    wait_until(lambda: last["hash_after"] == files.sha256_file(stack.live), 10, "the file write")
    assert any(line.startswith("+    server app-b 127.0.0.1:") for line in last["changed"])
    consul.outage()
    wait_until(lambda: a.metric('lbctl_consul_requests_total{endpoint="checks",outcome="error"}'), 10, "a Consul error metric")
    a.stop()
    lines = a.log.read_text().splitlines()
    assert lines and all(json.loads(line)["message"] for line in lines[:-1])  # the last line is the stop note
    assert TOKEN not in a.log.read_text()


def test_two_controllers_and_a_bigip_pair_only_the_leader_syncs(tmp_path):
    """The issue's set-up: both controllers watch Consul, one BIG-IP (emulated) is shared."""
    from lbctl_testkit.emulators.bigip import BigIPEmulator

    with ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0) as consul, \
            BigIPEmulator("admin", "bigip-pw") as emu:
        consul.add_service("web", service_id="web-1", address="10.0.0.1", port=80)
        settings = {
            "source": {"consul": {"address": f"127.0.0.1:{consul.port}", "services": ["web"], "wait": "5s"}},
            "state_dir": "state", "audit_log": "audit.jsonl",
            "watch": {"min_wait": "0s", "max_wait": "1s", "retry_max": "1s"},
            "targets": {"f5": {"kind": "bigip", "host": "127.0.0.1", "port": emu.port, "username": "admin",
                               "password_env": "LBCTL_TEST_BIGIP_PW", "ca_bundle": emu.ca_path, "drain_time": "0s"}},
        }
        stack = Stack.__new__(Stack)  # only the directory and the settings are used by Controller
        stack.dir, stack.settings = tmp_path, settings
        controllers = []
        members = lambda: sorted(m["name"] for pool in emu.dump()["pools"].values() for m in pool.get("members", []))
        try:
            os.environ["LBCTL_TEST_BIGIP_PW"] = "bigip-pw"
            a, b = leader_and_follower(stack, controllers)
            wait_until(lambda: len(members()) == 1, 10, "the first sync")
            consul.add_service("web", service_id="web-2", address="10.0.0.2", port=80)
            wait_until(lambda: len(members()) == 2, 10, "web-2 on the BIG-IP")
            wait_until(lambda: writers(stack) == ["ctl-a", "ctl-a"], 10, "ctl-a's audit entries")
            os.kill(a.proc.pid, signal.SIGKILL)
            consul.advance(11)
            wait_until(lambda: b.logged("ctl-b is the leader"), 15, "ctl-b to take over")
            consul.add_service("web", service_id="web-3", address="10.0.0.3", port=80)
            wait_until(lambda: len(members()) == 3, 10, "web-3 synced by ctl-b")
            wait_until(lambda: writers(stack)[-1:] == ["ctl-b"], 10, "ctl-b's audit entry")
            assert set(writers(stack)) == {"ctl-a", "ctl-b"}
        finally:
            del os.environ["LBCTL_TEST_BIGIP_PW"]
            for c in controllers:
                c.stop()
