"""Membership changes through HAProxy's Runtime API, without reloads: driven by
Consul (the emulator) through a real ``lbctl watch``, with real HAProxy, real
backends and real traffic.  Reloads are counted on the master CLI."""

from __future__ import annotations

import json


from lbctl.errors import CommandError
from lbctl.targets.haproxy_ctl import parse_servers_state
from tests.support import requires_haproxy, wait_until
from tests.support.world import running_world

pytestmark = requires_haproxy


def weight_of(world, address_port: str) -> int:
    """uweight of the server at ``address_port``, from ``show servers state``."""
    host, port = address_port.split(":")
    rows = [r for r in parse_servers_state(world.server_state()) if (r.addr, r.port) == (host, int(port))]
    assert len(rows) == 1, rows
    return rows[0].uweight


def test_add_reweight_drain_and_remove_without_a_reload(tmp_path):
    with running_world(tmp_path, slots=4) as world:
        reloads = world.reloads()
        for name in "bc":
            world.register(name)
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "b and c to take traffic")
        c = f"127.0.0.1:{world.backends['c'].port}"
        world.register("c", weights={"Passing": 7, "Warning": 1})
        wait_until(lambda: weight_of(world, c) == 7, 10, "c's new weight to be live")
        world.register("c", weights={"Passing": 7, "Warning": 1}, meta={"lb-state": "drain"})
        wait_until(lambda: world.serves({"a", "b"}), 10, "c to be drained")
        world.consul.remove_service("app-b")
        wait_until(lambda: world.serves({"a"}), 10, "b to be removed")
        assert world.reloads() == reloads
        assert world.logged("through the runtime API, without a reload")
        expected = {"used": {"slot1": f"127.0.0.1:{world.backends['a'].port}", "slot3": c},
                    "free": ["slot2", "slot4", "slot5"]}
        # the file follows the runtime change a moment later: lbctl status reads the file
        wait_until(lambda: json.loads(world.stack.run("status", "--json").output)[0]["slots"]["app"] == expected,
                   10, "lbctl status to show the slots in use")


def test_exhausting_the_slots_costs_one_reload(tmp_path):
    with running_world(tmp_path, slots=2) as world:  # a + 2 spare slots
        reloads = world.reloads()
        for name in "bc":
            world.register(name)
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "b and c in the spare slots")
        assert world.reloads() == reloads
        world.register("d")
        wait_until(lambda: world.serves({"a", "b", "c", "d"}), 10, "d after the pool grew")
        assert world.reloads() == reloads + 1
        assert "server slot6 127.0.0.1:9 weight 1 disabled" in world.stack.live.read_text()


def test_a_structural_change_costs_one_reload(tmp_path):
    with running_world(tmp_path, slots=4) as world:
        reloads = world.reloads()
        world.register("a", meta={"lb-balance": "leastconn"})
        wait_until(lambda: "balance leastconn" in world.stack.live.read_text(), 10, "the new balance algorithm")
        wait_until(lambda: world.reloads() == reloads + 1, 10, "one reload", ignore=(CommandError,))
        assert world.serves({"a"})


def test_a_broken_socket_falls_back_to_a_reload(tmp_path):
    with running_world(tmp_path, slots=4) as world:
        reloads = world.reloads()
        (world.stack.dir / "stats.sock").unlink()  # HAProxy keeps listening on a path nobody can reach
        world.register("b")
        wait_until(lambda: world.serves({"a", "b"}), 10, "b through the reload path")
        assert world.reloads() == reloads + 1
        assert world.logged("runtime API failed")
        # The new worker inherits the listening sockets, so the reload does not bring the
        # path back: every change keeps taking the reload path, and stays correct.
        world.register("c")
        wait_until(lambda: world.serves({"a", "b", "c"}), 10, "c through the reload path")
        assert world.reloads() == reloads + 2
