"""The shortcuts that keep a runtime-path change's CPU in lbctl small (issue 11):
each must answer exactly as the plain computation it replaces."""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

from lbctl import digests, textdiff


def plain_prefix(a, b) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def plain_suffix(a, b, limit) -> int:
    n = 0
    while n < min(limit, len(a), len(b)) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return n


@pytest.mark.parametrize("chunk", [4, 7, 1 << 16])
@pytest.mark.parametrize("kind", [str, bytes])
@pytest.mark.parametrize("seed", range(30))
def test_common_prefix_and_suffix_agree_with_a_plain_scan(monkeypatch, chunk, kind, seed):
    """Chunks smaller than the texts, texts of different lengths, edits at the ends and
    in the middle, equal texts, empty texts: the chunked scan finds what one at a time finds."""
    monkeypatch.setattr(textdiff, "CHUNK", chunk)
    monkeypatch.setattr(textdiff, "EXACT", min(chunk, 3))
    rng = random.Random(seed)
    a = "".join(rng.choice("ab\n") for _ in range(rng.randint(0, 300)))
    b = a
    for _ in range(rng.randint(0, 3)):
        at = rng.randint(0, len(b))
        b = b[:at] + "".join(rng.choice("abc") for _ in range(rng.randint(0, 5))) + b[at + rng.randint(0, 5):]
    if kind is bytes:
        a, b = a.encode(), b.encode()
    same = textdiff.common_prefix(a, b)
    assert same == plain_prefix(a, b)
    limit = min(len(a), len(b)) - same
    assert textdiff.common_suffix(a, b, limit) == plain_suffix(a, b, limit)
    assert textdiff.common_suffix(b, a, len(a) + len(b)) == plain_suffix(b, a, len(a) + len(b))


def test_digest_is_sha256_and_keeps_the_texts_a_round_asks_for(monkeypatch):
    """A round asks for the new candidate's digest, then the live text's (the previous
    candidate): four rounds in a row must not compute any text twice."""
    texts = [os.urandom(3000).hex() + str(n) for n in range(8)]
    for text in texts[:2]:
        assert digests.digest(text) == hashlib.sha256(text.encode()).hexdigest()
    assert digests.digest("é" * 70000) == hashlib.sha256(("é" * 70000).encode()).hexdigest()
    assert digests.digest(None) is None
    computed = []
    real = digests.sha256_text
    monkeypatch.setattr(digests, "sha256_text", lambda text: computed.append(text) or real(text))
    for before, after in zip(texts, texts[1:]):
        digests.digest(after)
        digests.digest(before)
    assert computed == texts[2:]


def test_pool_gauges_found_by_place_are_those_a_scan_sets():
    """The member gauges of the dirty pools, found through their places in the model,
    are those the scan of every pool sets; names without a pool, or at a place that
    holds another pool, set nothing."""
    from lbctl import model
    from lbctl.discovery import merge
    from lbctl.watch.metrics import Metrics

    pools = tuple(model.Pool(f"p{i}", tuple(model.Member(f"p{i}-m{j}", "10.0.0.1", 8000 + j,
                                                          state="drain" if (i + j) % 3 == 0 else "enabled")
                                            for j in range(i % 4 + 1))) for i in range(12))
    desired = model.Desired((), pools)
    where = merge.positions(desired)
    names = {"p1", "p5", "p11", "nothing"}
    scanned, placed = Metrics(), Metrics()
    scanned.pools(desired, names)
    placed.pools(desired, names, where)
    lines = sorted(placed.text().splitlines())
    assert lines == sorted(scanned.text().splitlines()) and b'pool="p5"' in placed.text()
    assert b'pool="p2"' not in placed.text()
    stale = Metrics()
    stale.pools(desired, {"p1"}, {**where, "p1": where["p2"]})
    assert b'pool="p1"' not in stale.text() and b'pool="p2"' not in stale.text()


@pytest.mark.parametrize("linked", [True, False])
def test_backup_of_a_known_file_is_its_text_under_its_sha256(tmp_path, monkeypatch, linked):
    """The backup of the file as lbctl last wrote it takes its digest from the text
    (hashed once a round) and is a hard link, or a copy where links fail."""
    from lbctl.targets import files

    live = tmp_path / "a.cfg"
    live.write_text("served é")
    if not linked:
        monkeypatch.setattr(files, "hard_link", lambda src, dst: False)
    backup = files.BackupStore(tmp_path / "backup").save(live, (files.stat_key(os.stat(live)), "served é"))
    assert backup.sha256 == hashlib.sha256("served é".encode()).hexdigest()
    assert backup.read_bytes() == "served é".encode()
    assert (os.stat(backup.path).st_ino == os.stat(live).st_ino) is linked


def plain_service_list(store) -> dict:
    tags: dict = {}
    for svcs in store._svcs.values():
        for svc in svcs.values():
            tags.setdefault(svc["Service"], {}).update(dict.fromkeys(svc["Tags"]))
    return {name: list(tags[name]) for name in sorted(tags)}


@pytest.mark.parametrize("seed", range(10))
def test_emulator_catalog_services_kept_per_service_is_the_union_of_every_instance(seed):
    """The emulator's ``catalog/services`` keeps each service's tags until one of its
    instances is written: after random registrations, re-tags, deregistrations and node
    removals it answers as the union over every instance, in the same order, and never
    changes an answer it gave (its encoded body is kept with it)."""
    from lbctl_testkit.emulators.consul import Store

    rng = random.Random(seed)
    store = Store()
    for n in range(4):
        store.add_node(f"n{n}", f"10.0.0.{n + 1}")
    for _ in range(120):
        read = store.read_catalog_services()[1]
        given = read()[1]
        as_given = json.dumps(given)
        what, node = rng.random(), f"n{rng.randint(0, 3)}"
        if what < 0.6:
            store.add_service(f"s{rng.randint(0, 6)}", node=node, service_id=f"i{rng.randint(0, 9)}",
                              tags=rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)))
        elif what < 0.9:
            sid = rng.choice(sorted(store._svcs[node]) or ["none"])
            if sid != "none":
                store.remove_service(sid, node=node)
        else:
            store.remove_node(node)
            store.add_node(node, "10.0.0.9")
        assert read()[1] == plain_service_list(store)
        assert list(read()[1]) == list(plain_service_list(store))
        assert json.dumps(given) == as_given


def test_the_hunt_order_kept_follows_services_without_checks_and_readiness_new_services():
    """The hunt's order is kept between hunts, but a service that loses its checks leaves
    it (it is read at once instead); readiness, once reached, holds until the catalog
    names a service not read yet."""
    from tests.unit.test_consul_hunt import SERVICES, entries, unexplained, watcher

    w = watcher()
    assert w.ready()
    unexplained(w, 12)
    assert set(w.hunt) == set(SERVICES)
    w.busy.add("svc-1")
    w._read("svc-1", 12, [{**entries("svc-1")[0], "Checks": []}])  # found, and now without checks
    assert not w.hunt
    unexplained(w, 13)
    assert "svc-1" in w.urgent and set(w.hunt) == set(SERVICES) - {"svc-1"}
    assert w.hunt_order == sorted(set(SERVICES) - {"svc-1"})  # what the next hunt reads after the recent ones
    w.settings = w.settings.__class__(**{**vars(w.settings), "tag": "edge"})
    w._catalog(14, {**{n: ["edge"] for n in SERVICES}, "svc-new": ["edge"]})
    assert "svc-new" in w.wanted and not w.ready()
    w.busy.add("svc-new")
    w._read("svc-new", 14, entries("svc-new"))
    assert w.ready()
