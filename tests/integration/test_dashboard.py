"""The operator page of a real ``lbctl watch`` (Consul emulator, real HAProxy): member
states read live from HAProxy's stats socket, a failing member shown down with HAProxy's
own check result, and the history from the audit log; and ``lbctl ui`` without a watch."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from lbctl_testkit.support import Backend, free_port, requires_haproxy, wait_until
from lbctl_testkit.support.stack import Stack
from lbctl_testkit.support.world import running_world

pytestmark = requires_haproxy


def api(port: int, query: str = "") -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/status{query}", timeout=10) as answer:
        assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
        return json.loads(answer.read())


def members(status: dict, pool: str = "app") -> dict[str, dict]:
    found = [p for p in status["pools"]["items"] if p["name"] == pool]
    return {m["name"]: m for m in found[0]["members"]} if found else {}


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?q=app", timeout=10) as answer:
        return answer.read().decode()


@pytest.mark.parametrize("slots", [0, 2], ids=["servers", "runtime-slots"])  # slots: b is served by slotN
def test_the_page_shows_live_member_states_from_haproxy(tmp_path, slots):
    port = free_port()
    with running_world(tmp_path, slots=slots) as world:
        assert world.stop_watch() == 0
        world.stack.settings["audit_log"] = str(tmp_path / "audit.log")
        world.stack.write_config()
        world.start_watch("--listen", f"127.0.0.1:{port}")
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b to take traffic")
        up = wait_until(lambda: (m := members(api(port))) and all(
            x["live"] == "up" and x["check"].startswith("L7OK") for x in m.values()) and m, 10,
            "both members reported up by HAProxy, its HTTP check passed (L7OK)")
        assert {m["address"] for m in up.values()} == {"127.0.0.1"}
        assert all(m["by_target"]["edge"]["sessions"] == 0 for m in up.values())
        world.backends["b"].close()  # b stops answering: HAProxy's own check fails
        down = wait_until(lambda: (m := members(api(port))) and any(x["live"] == "down" for x in m.values()) and m,
                          20, "b reported down by HAProxy")
        b = next(m for m in down.values() if m["live"] == "down")
        assert b["port"] == world.backends["b"].port
        assert b["check"].startswith("L4CON"), b  # HAProxy's own words: the connection was refused
        assert b["want"] == "enabled"  # Consul still says passing: lbctl wants it, HAProxy finds it down
        html = page(port)
        assert 'data-live="down"' in html and 'id="latency-chart"' in html
        status = api(port)
        edge = status["targets"][0]
        assert edge["name"] == "edge" and edge["kind"] == "haproxy" and edge["live"] == "reported"
        assert edge["config_hash"] and status["source"]["kind"] == "consul"
        assert status["history"] and status["history"][0]["target"] == "edge"


def test_lbctl_ui_serves_the_page_without_watch_until_ctrl_c(tmp_path):
    port = free_port()
    stack = Stack(tmp_path, "haproxy")
    with Backend("a") as a, Backend("b") as b:
        stack.inventory([("a", a.port)])
        assert stack.run("apply").exit_code == 0
        with stack.running():
            proc = stack.spawn("ui", "--listen", f"127.0.0.1:{port}")
            try:
                first = wait_until(lambda: members(api(port)), 10, "lbctl ui to answer", ignore=(OSError,))
                assert set(first) == {"a"} and api(port)["source"]["kind"] == "inventory"
                wait_until(lambda: members(api(port))["a"]["live"] == "up", 10, "a up from HAProxy's stats socket")
                stack.inventory([("a", a.port), ("b", b.port)])  # lbctl ui re-reads the inventory by itself
                wait_until(lambda: set(members(api(port))) == {"a", "b"}, 15, "b on the page")
                assert members(api(port))["b"]["live"] == "unknown"  # not applied: HAProxy does not serve it
            finally:
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=20)
            assert proc.returncode == 0, err
            assert f"serving the operator page on http://127.0.0.1:{port}/" in err


def test_lbctl_ui_refuses_a_non_loopback_address_without_auth(tmp_path):
    stack = Stack(tmp_path, "haproxy")
    stack.inventory([("a", 9)])
    result = stack.run("ui", "--listen", "0.0.0.0:9")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "lbctl: error: refusing to serve the operator page on 0.0.0.0:9 without ui.auth in lbctl.yml (a token or a "
        "user and password); or listen on 127.0.0.1"]
