"""bench/render.py's inventory is valid at every size it is run at (1,000,000 servers)."""

import socket

from tests.helpers import bench_script


def bench():
    return bench_script("render")


def test_every_server_gets_its_own_valid_address_past_64000_pools():
    render = bench()
    doc = render.inventory(66_000, 2)  # the old generator made 10.256.0.1 at pool 64,000
    addresses = [m["address"] for pool in doc["pools"].values() for m in pool["members"]]
    assert len(addresses) == 132_000 == len(set(addresses))
    for address in addresses + [render.address(1_000_000), render.address(2**24 - 1)]:
        socket.inet_pton(socket.AF_INET, address)
    assert render.address(2**24 - 1) == "10.255.255.255"


def test_a_million_servers_get_distinct_addresses():
    render = bench()
    assert len({render.address(i) for i in range(1, 1_000_001)}) == 1_000_000
