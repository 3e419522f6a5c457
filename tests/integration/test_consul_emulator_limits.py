"""The emulator's per-client connection cap, like Consul's ``limits.http_max_conns_per_client``.

Consul (hashicorp/go-connlimit) counts every open connection per client IP, idle
keep-alive ones included, and answers a connection past the cap with a canned
``429 Too Many Requests`` before reading any request, then closes it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import consul
import pytest
import requests
from consul.exceptions import ClientError

from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.emulators.consul.connlimit import TOO_MANY_CONNS


def _open(port: int, n: int) -> list[socket.socket]:
    """*n* idle keep-alive connections, each proven admitted by one answered request."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200"), "connection under the cap must be served"
        socks.append(s)
    return socks


def _wait_for(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_cap_is_on_by_default_at_consuls_200():
    with ConsulEmulator() as emu:
        assert emu.max_conns_per_client == 200
        socks = _open(emu.port, 200)
        try:
            assert emu.connections("127.0.0.1") == 200
            r = requests.get(f"{emu.url}/v1/catalog/services", timeout=5)
            assert r.status_code == 429
            assert r.text == TOO_MANY_CONNS
            assert r.headers["Content-Type"] == "text/plain"
            assert r.headers["Connection"] == "close"
            assert emu.refused() == 1
            assert emu.peak_connections() == 200
        finally:
            for s in socks:
                s.close()


def test_past_the_cap_the_raw_answer_is_consuls_and_the_connection_closes():
    with ConsulEmulator(max_conns_per_client=3) as emu:
        socks = _open(emu.port, 3)
        s = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
        s.sendall(b"GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):  # the server closes: recv ends with b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0] == b"HTTP/1.1 429 Too Many Requests"
        assert body == TOO_MANY_CONNS.encode()
        assert emu.request_count() == 3, "a refused connection's request is never read"
        s.close()
        for x in socks:
            x.close()


def test_closing_connections_frees_room_and_peak_is_kept():
    with ConsulEmulator(max_conns_per_client=2) as emu:
        socks = _open(emu.port, 2)
        assert emu.connections() == 2 and emu.peak_connections() == 2
        socks.pop().close()
        assert _wait_for(lambda: emu.connections() == 1)
        socks += _open(emu.port, 1)  # room again
        assert emu.refused() == 0
        for s in socks:
            s.close()
        assert _wait_for(lambda: emu.connections() == 0)
        assert emu.peak_connections() == 2 and emu.peak_connections("127.0.0.1") == 2
        assert emu.peak_connections("127.0.0.2") == 0
        emu.reset_connection_stats()
        assert emu.peak_connections() == 0 and emu.refused() == 0


def test_cap_is_per_client_address():
    with ConsulEmulator(host="127.0.0.1", max_conns_per_client=1) as emu:
        a = _open(emu.port, 1)
        b = socket.create_connection(("127.0.0.1", emu.port), timeout=5, source_address=("127.0.0.2", 0))
        b.sendall(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b.recv(4096).startswith(b"HTTP/1.1 200")
        assert emu.connections("127.0.0.1") == 1 and emu.connections("127.0.0.2") == 1
        assert emu.refused() == 0
        for s in a + [b]:
            s.close()


def test_held_blocking_queries_count_and_py_consul_sees_client_error():
    """Long polls hold their connection: the next client past the cap gets 429 (ClientError)."""
    with ConsulEmulator(max_conns_per_client=2, default_wait=30, max_wait=30, jitter=False) as emu:
        emu.add_service("web", service_id="web-1", port=80)
        idx = emu.service_index("web")
        holders = [consul.Consul(port=emu.port) for _ in range(2)]
        threads = [threading.Thread(target=h.health.service, args=("web",), kwargs={"index": idx, "wait": "30s"},
                                    daemon=True) for h in holders]
        for t in threads:
            t.start()
        assert emu.wait_blocking(2)
        with pytest.raises(ClientError, match="too many concurrent connections"):
            consul.Consul(port=emu.port).catalog.services()
        assert emu.refused() == 1
        emu.add_service("web", service_id="web-2", port=80)  # wake the holders
        for t in threads:
            t.join(5)


def test_runtime_change_and_no_cap():
    with ConsulEmulator(max_conns_per_client=0) as emu:
        socks = _open(emu.port, 5)
        assert emu.refused() == 0
        emu.set_max_conns_per_client(4)  # lowering keeps the open ones, like Consul's SetConfig
        assert requests.get(f"{emu.url}/v1/status/leader", timeout=5).status_code == 429
        assert emu.connections() == 5
        for s in socks:
            s.close()


def test_command_line_flag():
    out = subprocess.run([sys.executable, "-m", "lbctl_testkit.emulators.consul", "--help"], capture_output=True,
                         text=True, check=True).stdout
    words = " ".join(out.split())
    assert "--http-max-conns-per-client N" in words and "(default 200; 0: no cap)" in words
