"""The BIG-IP emulator's pure model, without HTTP: names, the undo journal,
transactions and AS3 change detection."""

from __future__ import annotations

import pytest

from lbctl_testkit.emulators.bigip import names
from lbctl_testkit.emulators.bigip.errors import IcrError
from lbctl_testkit.emulators.bigip.ltm import Ltm
from lbctl_testkit.emulators.bigip.transactions import Transactions


@pytest.mark.parametrize("text, node, port, canonical", [
    ("10.0.0.1:80", "10.0.0.1", 80, "10.0.0.1:80"),
    ("10.0.0.1:http", "10.0.0.1", 80, "10.0.0.1:80"),
    ("10.0.0.1%2:443", "10.0.0.1%2", 443, "10.0.0.1%2:443"),
    ("2001:db8::1.80", "2001:db8::1", 80, "2001:db8::1.80"),
    ("web1:8080", "web1", 8080, "web1:8080"),
])
def test_member_names(text, node, port, canonical):
    parsed = names.parse_member(text)
    assert (parsed.node, parsed.port, parsed.name) == (node, port, canonical)


@pytest.mark.parametrize("text", ["10.0.0.1", "2001:db8::1", "web1", ":80", "10.0.0.1:x"])
def test_member_names_without_a_usable_port_are_refused(text):
    with pytest.raises(IcrError) as info:
        names.parse_member(text)
    assert info.value.status == 400


def test_monitor_rules_accept_sdk_braceless_form_and_print_the_device_form():
    ltm = Ltm()
    assert ltm.monitor_rule("http", "Common") == "/Common/http "
    assert ltm.monitor_rule("/Common/http and /Common/tcp", "Common") == \
        "/Common/http and /Common/tcp "
    braced = "min 1 of { /Common/http /Common/tcp }"
    assert ltm.monitor_rule(braced, "Common") == braced
    assert ltm.monitor_rule("min 1 of  /Common/http /Common/tcp", "Common") == braced
    assert ltm.monitor_rule("none", "Common") is None
    with pytest.raises(IcrError):
        ltm.monitor_rule("/Common/nope", "Common")


def test_a_failing_request_leaves_no_trace():
    ltm = Ltm()
    generation = ltm.generation
    with pytest.raises(IcrError):
        ltm.handle("POST", ["ltm", "pool"], [], {
            "name": "p1", "members": [{"name": "10.0.0.1:80"}, {"name": "10.0.0.2:80",
                                                                "ratio": 0}]})
    assert ltm.tables["pool"] == {} and ltm.tables["node"] == {} and ltm.members == {}
    assert ltm.node_refs == {} and ltm.node_addrs == {}
    assert ltm.generation == generation


def test_node_references_follow_member_changes():
    ltm = Ltm()
    ltm.handle("POST", ["ltm", "pool"], [], {"name": "p1", "members": ["10.0.0.1:80",
                                                                      "10.0.0.1:81"]})
    assert ltm.node_refs == {"/Common/10.0.0.1": {"/Common/p1": 2}}
    ltm.handle("PATCH", ["ltm", "pool", "~Common~p1"], [], {"members": ["10.0.0.2:80"]})
    assert ltm.node_refs == {"/Common/10.0.0.2": {"/Common/p1": 1}}
    ltm.handle("DELETE", ["ltm", "node", "~Common~10.0.0.1"], [], None)
    assert "/Common/10.0.0.1" not in ltm.tables["node"]


def test_transaction_commit_is_all_or_nothing_and_validate_only_applies_nothing():
    ltm, now = Ltm(), [100.0]
    txns = Transactions(lambda: now[0], ltm.version)

    def execute(cmd):
        ltm.handle(cmd.method, cmd.path.split("/")[1:], cmd.params, cmd.body)

    def run(body):
        return txns.handle("PATCH", str(tid), body, execute, lambda dry: ltm.atomic(dry=dry))

    tid = txns.create().trans_id
    txns.queue(tid, "POST", "tm/ltm/pool", [], {"name": "a"})
    txns.queue(tid, "POST", "tm/ltm/pool", [], {"name": "a"})
    with pytest.raises(IcrError) as info:
        run({"state": "VALIDATING"})
    assert info.value.message.startswith("transaction failed:01020066:3:")
    assert info.value.error_stack == ["command 2 (evalOrder 2): POST /mgmt/tm/ltm/pool"]
    assert ltm.tables["pool"] == {} and txns.items[tid].state == "FAILED"

    tid = txns.create().trans_id
    txns.queue(tid, "POST", "tm/ltm/pool", [], {"name": "b"})
    assert run({"state": "VALIDATING", "validateOnly": True})[1]["state"] == "COMPLETED"
    assert ltm.tables["pool"] == {}
    now[0] += 121
    with pytest.raises(IcrError) as info:
        txns.get(tid)
    assert info.value.status == 404


def test_partition_dump_ignores_generations():
    ltm = Ltm()
    ltm.add_folder("/T1")
    ltm.handle("POST", ["ltm", "pool"], [], {"name": "p", "partition": "T1"})
    before = ltm.dump_partition("T1")
    ltm.handle("DELETE", ["ltm", "pool", "~T1~p"], [], None)
    ltm.handle("POST", ["ltm", "pool"], [], {"name": "p", "partition": "T1"})
    assert ltm.dump_partition("T1") == before
