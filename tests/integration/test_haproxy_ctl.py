"""lbctl.targets.haproxy_ctl against a real HAProxy 2.6 master-worker on loopback."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbctl.errors import CommandError, ReloadError
from lbctl.targets.haproxy import ctl as hc
from lbctl.targets.files import atomic_write
from lbctl.targets.process import run
from lbctl_testkit.support import (Backend, HAProxyProcess, find_binary, free_port, http_get, requires_haproxy,
                           running_haproxy, wait_until)

pytestmark = requires_haproxy


def render(d: Path, port: int, backend: Backend, extra_bind: int | None = None) -> str:
    extra = f"    bind 127.0.0.1:{extra_bind}\n" if extra_bind else ""
    return f"""\
global
    stats socket {d}/stats.sock mode 600 level admin
    hard-stop-after 5s
defaults
    mode http
    option idle-close-on-response
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{port}
{extra}    default_backend app
backend app
    server web1 {backend.address}
"""


@dataclass
class Env:
    h: HAProxyProcess
    url: str
    port: int
    old: Backend
    new: Backend

    def write(self, backend: Backend, extra_bind: int | None = None) -> None:
        atomic_write(self.h.config, render(self.h.directory, self.port, backend, extra_bind))

    def served_by(self) -> str:
        return http_get(self.url, timeout=5).headers.get("x-backend", "")


@pytest.fixture
def env(tmp_path):
    port = free_port()
    with Backend("old") as old, Backend("new") as new:
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(render(tmp_path, port, old))
        with running_haproxy(cfg, tmp_path) as h:
            e = Env(h, f"http://127.0.0.1:{port}/", port, old, new)
            wait_until(lambda: e.served_by() == "old", 5, "haproxy to serve the first config", ignore=(OSError,))
            yield e


def test_master_cli_answers_with_half_close(env):
    text = hc.socket_command(env.h.master_socket, "show proc", timeout=2)
    info = hc.parse_show_proc(text)
    assert info.master_pid == env.h.master_pid
    assert len(info.workers) == 1 and info.failed == 0


@pytest.mark.parametrize("use_signal", [False, True], ids=["cli-reload", "sigusr2"])
def test_reload_confirms_new_worker_and_serves_new_config(env, use_signal):
    before = env.h.cli.show_proc()
    env.write(env.new)
    after = env.h.cli.reload(timeout=10, use_signal=use_signal)
    assert after.reloads == before.reloads + 1
    assert after.failed == 0
    assert after.master_pid == before.master_pid
    assert after.workers and not set(after.worker_pids) & set(before.worker_pids)
    wait_until(lambda: env.served_by() == "new", 5, "the new config to serve")


def test_reload_onto_a_taken_port_fails_and_old_worker_keeps_serving(env):
    before = env.h.cli.show_proc()
    with socket.socket() as blocker:  # no SO_REUSEPORT: haproxy cannot share it
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        env.write(env.new, extra_bind=taken)
        check = run([find_binary("haproxy"), "-c", "-q", "-f", str(env.h.config)], timeout=30)
        assert check.ok, "haproxy -c is expected to miss the taken port: " + check.output

        with pytest.raises(ReloadError) as info:
            env.h.cli.reload(timeout=15)
        msg = str(info.value)
        assert "haproxy reload failed" in msg and "Address already in use" in msg and f":{taken}" in msg
        assert "\n" not in msg

        now = env.h.cli.show_proc()
        assert now.failed == 1 and now.reloads == before.reloads + 1
        assert now.worker_pids == before.worker_pids
        assert env.served_by() == "old"

        env.write(env.old)  # the rollback: restore the file and reload again
        restored = env.h.cli.reload(timeout=10)
    assert restored.failed == 0 and restored.reloads == before.reloads + 2
    assert not set(restored.worker_pids) & set(before.worker_pids)
    assert env.served_by() == "old"


def test_reload_needs_an_answering_master_cli(tmp_path):
    with socket.socket(socket.AF_UNIX) as fake:  # a socket that accepts and never answers
        fake.bind(str(tmp_path / "master.sock"))
        fake.listen()
        with pytest.raises(CommandError, match="'show proc' failed"):
            hc.MasterCLI(tmp_path / "master.sock").reload(timeout=0.5)


def test_servers_state_and_dump(env, tmp_path):
    stats = env.h.directory / "stats.sock"
    rows = hc.show_servers_state(stats, "app")
    assert [(r.backend, r.name, r.addr, r.port, r.up, r.maint) for r in rows] == [
        ("app", "web1", "127.0.0.1", env.old.port, True, False)]
    assert len(hc.show_servers_state(stats)) == 1
    with pytest.raises(CommandError, match="Can't find backend"):
        hc.show_servers_state(stats, "nope")

    state_file = tmp_path / "state" / "haproxy.state"
    state_file.parent.mkdir()
    assert hc.dump_server_state(stats, state_file) == state_file
    assert hc.parse_servers_state(state_file.read_text())[0].name == "web1"
    assert state_file.read_text().startswith("1\n# be_id be_name ")


def test_show_stat_of_some_backends_reads_those_only(tmp_path):
    """The operator page asks for the backends it shows: ``show stat <backend> 4 -1`` each,
    chained with ';' on one connection (more than ``STAT_BATCH``: several), a missing one left out."""
    servers = "".join(f"backend b{i}\n    server s1 127.0.0.1:{1000 + i}\n    server s2 127.0.0.1:{3000 + i}\n"
                      for i in range(250))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"global\n    stats socket {tmp_path}/stats.sock mode 600 level admin\ndefaults\n    mode http\n"
                   "    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n" + servers)
    with running_haproxy(cfg, tmp_path):
        stats = tmp_path / "stats.sock"
        wanted = [f"b{i}" for i in range(0, 250, 2)] + ["nope", "bad;name", "b0"]
        got = hc.show_stat(stats, wanted)
        assert set(got) == {f"b{i}" for i in range(0, 250, 2)}  # 125 backends: two connections
        assert set(got["b4"]) == {"s1", "s2"} and got["b4"]["s1"]["live"] == "up"  # no check: up
        assert hc.show_stat(stats, []) == {} and hc.show_stat(stats, ["nope"]) == {}
        assert len(hc.show_stat(stats)) == 250
