"""The emulator's check table: Consul's order, and each record encoded once until it changes."""

from __future__ import annotations

import json

from lbctl_testkit.emulators.consul.checktable import CheckTable


def chk(node: str, cid: str, status: str = "passing") -> dict:
    return {"Node": node, "CheckID": cid, "Status": status}


def test_order_is_node_then_check_id_whatever_the_insertion_order():
    t = CheckTable([chk("b", "x"), chk("a", "z")])
    t.put(chk("a", "b"))
    t.put(chk("c", "a"))
    assert [(c["Node"], c["CheckID"]) for c in json.loads(t.select())] == \
        [("a", "b"), ("a", "z"), ("b", "x"), ("c", "a")]
    assert len(t) == 4


def test_replace_delete_and_select_with_a_predicate():
    t = CheckTable([chk("a", "1"), chk("a", "2"), chk("b", "1")])
    t.put(chk("a", "2", "critical"))
    t.delete("b", "1")
    t.delete("b", "nope")  # absent: nothing happens
    assert json.loads(t.select()) == [chk("a", "1"), chk("a", "2", "critical")]
    assert json.loads(t.select(lambda c: c["Status"] == "critical")) == [chk("a", "2", "critical")]
    assert t.select(lambda c: False) == b"[]"
    assert [c["CheckID"] for c in t.records()] == ["1", "2"]


def test_the_whole_answer_is_reused_and_a_change_re_encodes_only_its_record():
    t = CheckTable(chk(f"n{i // 5}", f"c{i}") for i in range(1000))
    body = t.select()
    assert t.select() is body, "no change: the same bytes, nothing re-encoded"
    blobs = list(t._blobs)
    t.put(chk("n7", "c37", "warning"))
    assert sum(a is not b for a, b in zip(blobs, t._blobs)) == 1, "only the changed record is encoded again"
    after = json.loads(t.select())
    assert [c for c in after if c["Status"] == "warning"] == [chk("n7", "c37", "warning")]
    assert len(after) == 1000


def test_the_joined_body_equals_encoding_every_record_after_any_puts_and_deletes():
    import random

    rng = random.Random(7)
    t = CheckTable(chk(f"n{i % 7}", f"c{i}") for i in range(50))
    for step in range(200):
        if step % 3 == 0:
            t.select()
        node, cid = f"n{rng.randint(0, 8)}", f"c{rng.randint(0, 60)}"
        if rng.random() < 0.3:
            t.delete(node, cid)
        else:
            t.put(chk(node, cid, rng.choice(["passing", "critical"])))
        assert t.select() == json.dumps(t.records(), separators=(",", ":")).encode()
