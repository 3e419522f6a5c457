"""lbctl's balancer-manager client (lbctl/targets/apache/manager.py) against the real
Debian apache2, started here from a small configuration on 127.0.0.1 high ports,
with real backends and real traffic: weights shift requests, drain and maintenance
stop new ones, a hot standby waits, every change is read back, and the traps
(Referer, nonce, adds that answer 200 and add nothing) are what the client works
around or avoids."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import requests

from lbctl.errors import CommandError
from lbctl.targets.apache.balancers import Op
from lbctl.targets.apache.manager import Manager
from lbctl_testkit.support import SKIP_PREFIX, Backend, find_binary, free_port, http_get, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(find_binary("apache2") is None,
                                 reason=f"{SKIP_PREFIX}: apache2 binary not found; install the Debian 'apache2' package")]

MODULES = "/usr/lib/apache2/modules"
LOADED = ("mpm_event", "authz_core", "authz_host", "proxy", "proxy_http", "proxy_balancer", "slotmem_shm",
          "lbmethod_byrequests", "proxy_hcheck")


def config(directory: Path, listen: int, manager: int, members: list[Backend], growth: int) -> str:
    """A self-contained httpd.conf: one balancer (TCP health checks, ``growth`` spare
    slots) behind a listener VirtualHost, and balancer-manager on a loopback-only one,
    as lbctl's template lays them out."""
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    lines = [f"BalancerMember \"http://127.0.0.1:{b.port}\" route={b.name} loadfactor=1 hcmethod=TCP hcinterval=1"
             for b in members]
    return f"""ServerRoot {directory}
PidFile {directory}/httpd.pid
ErrorLog {directory}/error.log
DefaultRuntimeDir {directory}
ServerName 127.0.0.1
{user}{"".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so{chr(10)}" for m in LOADED)}
Listen 127.0.0.1:{listen}
Listen 127.0.0.1:{manager}
StartServers 2
BalancerPersist Off
<Proxy "balancer://web">
    {(chr(10) + "    ").join(lines)}
    ProxySet growth={growth}
</Proxy>
<VirtualHost 127.0.0.1:{listen}>
    ProxyPass "/" "balancer://web/"
</VirtualHost>
<VirtualHost 127.0.0.1:{manager}>
    <Location "/balancer-manager">
        SetHandler balancer-manager
        Require ip 127.0.0.1
    </Location>
</VirtualHost>
"""


@contextlib.contextmanager
def running_apache(directory: Path, text: str):
    """``apache2 -f httpd.conf -DFOREGROUND`` in its own process group, stopped at the end."""
    path = directory / "httpd.conf"
    path.write_text(text)
    with open(directory / "stderr.log", "ab") as out:
        proc = subprocess.Popen([find_binary("apache2"), "-f", str(path), "-DFOREGROUND"], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Stack:
    def __init__(self, directory: Path, backends: dict[str, Backend], growth: int = 2) -> None:
        self.backends = backends
        self.listen, port = free_port(), free_port()
        self.text = config(directory, self.listen, port, [backends["b1"], backends["b2"]], growth)
        self.manager = Manager(f"127.0.0.1:{port}")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.backends[name].port}"

    def spread(self, requests: int = 40) -> Counter:
        return Counter(http_get(f"http://127.0.0.1:{self.listen}/").body for _ in range(requests))

    def worker(self, name: str):
        return self.manager.read()["web"].worker("127.0.0.1", self.backends[name].port)


@pytest.fixture
def stack(tmp_path):
    with contextlib.ExitStack() as stack:
        backends = {name: stack.enter_context(Backend(name)) for name in ("b1", "b2", "b3", "b4", "b5")}
        s = Stack(tmp_path, backends)
        proc = stack.enter_context(running_apache(tmp_path, s.text))

        def ready():
            assert proc.poll() is None, (tmp_path / "error.log").read_text()
            return s.manager.read()
        wait_until(ready, 10, "apache2's balancer-manager to answer", ignore=(CommandError,))
        wait_until(lambda: s.spread(4) == Counter(b1=2, b2=2), 10, "apache2 to serve both members",
                   ignore=(OSError,))
        yield s


def test_the_state_reads_back(stack):
    web = stack.manager.read()["web"]
    assert len(web.nonce) == 36
    assert [(w.url, w.route, w.loadfactor, w.flags, w.usable) for w in web.workers] == [
        (stack.url("b1"), "b1", 1.0, frozenset(), True), (stack.url("b2"), "b2", 1.0, frozenset(), True)]


def test_a_weight_shifts_traffic(stack):
    stack.manager.set("web", stack.url("b2"), "b2", 3)
    assert stack.worker("b2").loadfactor == 3.0
    spread = stack.spread(40)
    assert spread["b2"] >= 2 * spread["b1"] > 0, spread


@pytest.mark.parametrize("flags", ["N", "D"])
def test_drain_and_maintenance_stop_new_requests(stack, flags):
    stack.manager.set("web", stack.url("b2"), "b2", 1, flags)
    assert stack.worker("b2").flags == frozenset(flags)
    assert stack.spread(20) == Counter(b1=20)
    stack.manager.set("web", stack.url("b2"), "b2", 1)
    assert stack.spread(20)["b2"] >= 5


def test_a_hot_standby_serves_only_when_the_others_cannot(stack):
    stack.manager.set("web", stack.url("b2"), "b2", 1, "H")
    assert stack.spread(10) == Counter(b1=10)
    stack.manager.set("web", stack.url("b1"), "b1", 1, "D")
    assert stack.spread(10) == Counter(b2=10)


def add(stack, name: str) -> int:
    """Add a member the way balancer-manager's form does; Apache's HTTP status."""
    nonce = stack.manager.read()["web"].nonce
    form = {"b": "web", "nonce": nonce, "b_nwrkr": stack.url(name), "b_wyes": "1"}
    return requests.post(stack.manager.url, data=form, headers={"Referer": stack.manager.url}, timeout=5).status_code


def test_adds_start_disabled_and_only_the_read_back_tells_a_failed_one(stack):
    """Why lbctl reads every change back, and adds no member at runtime (docs/apache.md#runtime-changes)."""
    assert add(stack, "b3") == 200
    assert (stack.worker("b3").flags, stack.worker("b3").route) == (frozenset("D"), "")
    assert set(stack.spread(10)) == {"b1", "b2"}
    assert add(stack, "b4") == 200  # growth=2: full now
    assert add(stack, "b5") in (200, 400)  # AH10164 in the error log; the answer says nothing
    assert stack.worker("b5") is None
    with pytest.raises(CommandError) as caught:
        stack.manager.set("web", stack.url("b5"), "b5", 1)
    assert str(caught.value) == (f"apache balancer-manager {stack.manager.url}: balancer://web member b5 "
                                 f"({stack.url('b5')}) is not in the balancer")


def test_without_a_same_site_referer_or_nonce_nothing_changes(stack):
    nonce = stack.manager.read()["web"].nonce
    form = {"b": "web", "w": stack.url("b2"), "nonce": nonce, "w_status_D": "1"}
    requests.post(stack.manager.url, data=form, timeout=5)  # no Referer: AH10187
    requests.post(stack.manager.url, data=form, headers={"Referer": "http://evil.example/"}, timeout=5)
    assert stack.worker("b2").flags == frozenset()
    stale = {name: type(b)(b.name, "0" * 36, b.workers) for name, b in stack.manager.read().items()}
    with pytest.raises(CommandError, match=r"balancer://web member b2 \(.*\) reads status 'Init Ok' \(wanted "
                                           r"route 'b2', loadfactor 1, flags D\)"):
        stack.manager.apply([Op("web", stack.url("b2"), "b2", 1, frozenset("D"))], state=stale)




def test_a_change_reads_the_page_once_more_when_a_restart_gave_new_nonces(stack, tmp_path):
    """The client keeps the last state (one request a change); a graceful restart it did
    not see makes Apache ignore the stale nonce: the read-back tells, and it reads again."""
    old = stack.manager.read()["web"].nonce
    os.kill(int((tmp_path / "httpd.pid").read_text()), signal.SIGUSR1)
    wait_until(lambda: Manager(stack.manager.address).read()["web"].nonce != old, 10, "the graceful's new nonce",
               ignore=(CommandError,))
    assert stack.manager.state["web"].nonce == old  # what it knows is stale
    stack.manager.set("web", stack.url("b2"), "b2", 3)
    assert stack.manager.state["web"].nonce != old and stack.worker("b2").loadfactor == 3.0


def test_one_kept_connection_serves_every_request(stack):
    stack.manager.read()
    kept = stack.manager.connection.sock
    for weight in (2, 3, 1):
        stack.manager.set("web", stack.url("b2"), "b2", weight)
    assert stack.manager.connection.sock is kept


def test_an_unreachable_manager_is_a_one_line_error():
    manager = Manager(f"127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(CommandError, match=r"^apache balancer-manager http://127\.0\.0\.1:\d+/balancer-manager "
                                           r"does not answer: ConnectionRefusedError$"):
        manager.read()
