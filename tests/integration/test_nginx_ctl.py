"""lbctl.targets.nginx_ctl against a real nginx 1.22 on loopback."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from lbctl.errors import ReloadError
from lbctl.targets.nginx import ctl as nginx_ctl
from lbctl.targets.files import atomic_write
from lbctl.targets.process import run
from lbctl_testkit.support import (Backend, NginxProcess, find_binary, free_port, http_get, nginx_globals,
                           nginx_temp_paths, requires_nginx, running_nginx, wait_until)

pytestmark = requires_nginx


def render(d: Path, port: int, backend: Backend, extra: str = "") -> str:
    return f"""\
worker_processes 2;
events {{ worker_connections 128; }}
http {{
    access_log off;
{nginx_temp_paths(d)}
    server {{
        listen 127.0.0.1:{port};
        {extra}
        location / {{ proxy_pass http://{backend.address}; }}
    }}
}}
"""


@dataclass
class Env:
    n: NginxProcess
    url: str
    port: int
    old: Backend
    new: Backend

    def write(self, backend: Backend, extra: str = "") -> None:
        atomic_write(self.n.config, render(self.n.directory, self.port, backend, extra))

    def served_by(self) -> str:
        return http_get(self.url, timeout=5).headers.get("x-backend", "")

    def check(self):
        d = self.n.directory
        return run([find_binary("nginx"), "-t", "-q", "-c", str(self.n.config), "-p", f"{d}/",
                    "-e", str(self.n.error_log), "-g", nginx_globals(d)], timeout=30)


@pytest.fixture
def env(tmp_path):
    port = free_port()
    with Backend("old") as old, Backend("new") as new:
        conf = tmp_path / "nginx.conf"
        conf.write_text(render(tmp_path, port, old))
        with running_nginx(conf, tmp_path) as n:
            e = Env(n, f"http://127.0.0.1:{port}/", port, old, new)
            wait_until(lambda: e.served_by() == "old", 5, "nginx to serve the first config", ignore=(OSError,))
            # the master forks its two workers after writing the pid file: a test's "before"
            # generation must hold both, or a late second worker looks like a reload
            wait_until(lambda: len(n.generation().workers) == 2, 10, "nginx's two workers")
            yield e


def test_generation_and_is_running(tmp_path):
    conf = tmp_path / "nginx.conf"
    with Backend("b") as b:
        conf.write_text(render(tmp_path, free_port(), b))
        with running_nginx(conf, tmp_path) as n:
            assert nginx_ctl.is_running(n.pidfile)
            # the master forks its two workers after writing the pid file: wait for both
            gen = wait_until(lambda: (g := nginx_ctl.generation(n.pidfile)) and len(g.workers) == 2 and g, 10,
                             "nginx's two workers")
            assert gen.master_pid == n.master_pid and gen.shutting_down == ()
            assert all(nginx_ctl.title(w) == nginx_ctl.WORKER for w in gen.workers)
    assert not nginx_ctl.is_running(n.pidfile)
    assert nginx_ctl.generation(n.pidfile) is None
    assert not any(nginx_ctl.alive(w) for w in gen.workers)


def test_good_reload_is_confirmed_and_serves_at_once(env):
    before = env.n.generation()
    env.write(env.new)
    after = nginx_ctl.reload(env.n.pidfile, env.n.error_log)
    assert after.master_pid == before.master_pid
    assert len(after.workers) == 2 and not set(after.workers) & set(before.workers)
    for old in before.workers:
        assert not nginx_ctl.alive(old) or nginx_ctl.title(old) == nginx_ctl.SHUTTING_DOWN
    # Confirmation waited for the old generation to stop accepting: no grace period needed.
    assert env.served_by() == "new"
    wait_until(lambda: env.n.generation().shutting_down == (), 10, "old workers to exit")
    assert env.n.generation().workers == after.workers


def test_reload_failing_at_bind_time_raises_and_old_config_serves(env):
    before = env.n.generation()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        env.write(env.new, extra=f"listen 127.0.0.1:{taken};")
        check = env.check()
        assert check.ok, "nginx -t is expected to miss the taken port: " + check.output

        with pytest.raises(ReloadError) as info:
            nginx_ctl.reload(env.n.pidfile, env.n.error_log, timeout=10)
        msg = str(info.value)
        assert msg.startswith("nginx reload failed, old config still live: [emerg] ")
        assert re.search(rf"bind\(\) to 127\.0\.0\.1:{taken} failed \(98: Address already in use\)", msg)

        assert env.n.generation() == before
        assert env.served_by() == "old"

        env.write(env.old)  # the rollback: restore the file and reload again
        restored = nginx_ctl.reload(env.n.pidfile, env.n.error_log)
    assert not set(restored.workers) & set(before.workers)
    assert env.served_by() == "old"


def test_reload_with_a_bad_directive_raises_and_old_config_serves(env):
    before = env.n.generation()
    env.write(env.new, extra="no_such_directive on;")
    with pytest.raises(ReloadError, match=r'\[emerg\] unknown directive "no_such_directive"'):
        nginx_ctl.reload(env.n.pidfile, env.n.error_log)
    assert env.n.generation() == before
    assert env.served_by() == "old"
    env.write(env.new)
    nginx_ctl.reload(env.n.pidfile, env.n.error_log)
    assert env.served_by() == "new"


def test_reload_without_error_log_fails_at_the_deadline(env):
    before = env.n.generation()
    env.write(env.new, extra="no_such_directive on;")
    with pytest.raises(ReloadError, match=r"not confirmed within 1s \(no new worker"):
        nginx_ctl.reload(env.n.pidfile, timeout=1)
    assert env.n.generation() == before
