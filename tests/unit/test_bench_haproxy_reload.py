"""bench/haproxy_reload.py renders a valid inventory and changes only what its options say."""

import json

from lbctl import inventory
from tests.helpers import bench_script


def bench():
    return bench_script("haproxy_reload")


def test_the_inventory_is_valid_and_every_server_has_its_own_address(tmp_path):
    bench().write_setup(tmp_path, 300, 5)
    desired = inventory.load(tmp_path / "inventory.json")
    members = [m for p in desired.pools for m in p.members]
    assert len(desired.pools) == 300 and len(members) == 1500
    assert len({m.address for m in members}) == 1500
    assert json.loads((tmp_path / "inventory.json").read_text())["defaults"]["pool"]["health"] == {"type": "none"}


def test_edited_adds_global_lines_and_leaves_out_only_the_state_file():
    text = ("global\n    master-worker\n    server-state-file /x/haproxy.state\n\ndefaults\n"
            "    load-server-state-from-file global\n    timeout connect 5s\n")
    edited = bench().edited
    assert edited(text, [], True) == text
    assert edited(text, ["nbthread 1"], True) == text.replace("global\n", "global\n    nbthread 1\n", 1)
    assert edited(text, [], False) == "global\n    master-worker\n\ndefaults\n    timeout connect 5s\n"
