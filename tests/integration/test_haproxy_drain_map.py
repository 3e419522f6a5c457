"""HAProxy's ``drain_map``: what ``lbctl drain-node`` uses to close kept-alive client
connections before the VIPs move (docs/high-availability.md).  Real HAProxy, real backend."""

from __future__ import annotations

import socket

import pytest

from lbctl.session import Session
from lbctl_testkit.support import Backend, requires_haproxy
from lbctl_testkit.support.stack import Stack

pytestmark = [pytest.mark.integration, *requires_haproxy]


@pytest.fixture
def stack(tmp_path):
    with Backend("a") as a:
        s = Stack(tmp_path, "haproxy")
        s.settings["targets"]["edge"]["drain_map"] = "edge.drain.map"  # relative to lbctl.yml
        s.write_config()
        s.inventory([("a", a.port)])
        assert s.run("apply").exit_code == 0
        with s.running():
            yield s


def exchange(port: int) -> tuple[str, bool]:
    """Two GETs on one connection: the first answer's headers, and whether HAProxy
    closed the connection after it (the second GET then has no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"a"):  # the backend answers its name
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head = data.split(b"\r\n\r\n")[0].decode().lower()
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            closed = s.recv(4096) == b""
        except ConnectionResetError:
            closed = True
        return head, closed


def test_drain_map_closes_kept_alive_connections_and_survives_a_reload(stack):
    drain_map = stack.dir / "edge.drain.map"
    assert drain_map.read_text() == ""  # made empty before haproxy -c: HAProxy refuses a missing map file
    rule = f"http-after-response set-header Connection close if {{ str(drain),map({drain_map}) -m found }}"
    assert rule in stack.live.read_text()
    session = Session.configured(stack.config_path, "edge")
    edge = session.target(session.single())
    head, closed = exchange(stack.port)
    assert "connection: close" not in head and not closed

    assert edge.keep_alive(False) is True
    head, closed = exchange(stack.port)
    assert "connection: close" in head and closed, head
    assert drain_map.read_text() == "drain 1\n"
    assert stack.run("reload").exit_code == 0  # the new workers read the file: still closing
    head, closed = exchange(stack.port)
    assert "connection: close" in head and closed, head

    edge.keep_alive(True)
    assert drain_map.read_text() == ""
    head, closed = exchange(stack.port)
    assert "connection: close" not in head and not closed
    assert stack.run("reload").exit_code == 0
    head, closed = exchange(stack.port)
    assert "connection: close" not in head and not closed


def test_without_drain_map_haproxy_cannot_close_them_at_runtime(tmp_path):
    stack = Stack(tmp_path, "haproxy")
    stack.inventory([("a", 9)])
    session = Session.configured(stack.config_path, "edge")
    assert session.target(session.single()).keep_alive(False) is False
    assert stack.run("render").output.count("http-after-response") == 0
