"""Before a reload, lbctl dumps the running servers' states without those whose line
changes (docs/upstream.md#haproxy-server-state).  It finds them from the changed
stretch of the file only; that must be exactly the servers a whole-file comparison
finds, whatever changed."""

from __future__ import annotations

import random

from lbctl import config, model
from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.render import render
from lbctl.targets.base import Change
from lbctl.targets.haproxy.state_file import carried, changed_servers, key, without_rows

OPTIONS = config.options("haproxy")
LISTENERS = (model.Listener("web", 8080, default_pool="p00"),)


def whole(pools) -> str:
    return render(model.Desired(LISTENERS, tuple(pools)), "haproxy", OPTIONS)


def changed(pool: model.Pool, rng: random.Random) -> model.Pool:
    members = list(pool.members)
    pick = rng.random()
    if pick < 0.3 and members:
        members.pop(rng.randrange(len(members)))
    elif pick < 0.6:
        members.append(model.Member(f"n{rng.randint(0, 99)}", f"10.9.0.{rng.randint(1, 250)}", rng.choice([80, 81])))
    elif members:
        k = rng.randrange(len(members))
        members[k] = model.replace(members[k], weight=rng.randint(1, 9), port=rng.choice([80, 81]),
                                   state=rng.choice(["enabled", "drain", "maint", "backup"]))
    unique = {m.name: m for m in members}
    return model.replace(pool, members=tuple(sorted(unique.values(), key=lambda m: m.name)))


def test_the_changed_stretch_finds_the_servers_a_whole_comparison_finds():
    rng = random.Random(11)
    pools = [model.Pool(f"p{i:02}", tuple(model.Member(f"m{j}", f"10.0.{i}.{j + 1}", 80) for j in range(3)))
             for i in range(8)]
    live, fast = whole(pools), 0
    for _ in range(200):
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(pools))
            pools[i] = changed(pools[i], rng)
        if rng.random() < 0.1:  # a pool comes or goes: more than server lines change
            pools = pools[:-1] if len(pools) > 4 else pools + [model.Pool(f"p{len(pools):02}")]
        candidate = whole(pools)
        before, after = haproxy_cfg.servers(live), haproxy_cfg.servers(candidate)
        stale = changed_servers(live, candidate)
        if stale is not None:
            fast += 1
            assert {k for k in before if k not in after or before[k] != after[k]} == stale & before.keys()
        live = candidate
    assert fast > 100


def test_excluded_servers_never_carry_over_whichever_way_the_rows_are_found():
    """``excluded``: servers not in the file (leftovers) or whose running state the file must replace."""
    pool = model.Pool("p00", (model.Member("a", "10.0.0.1", 80), model.Member("b", "10.0.0.2", 80)))
    text = whole([pool])
    header = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n"
    a = "3 p00 1 a 10.0.0.1 2 0 1 1 70 1 0 2 0 0 0 0 - 80 - 0 0 - - 0\n"
    b = "3 p00 2 b 10.0.0.2 2 0 7 1 70 1 0 2 0 0 0 0 - 80 - 0 0 - - 0\n"
    gone = "3 p00 3 gone 10.0.0.3 2 0 1 1 70 1 0 2 0 0 0 0 - 80 - 0 0 - - 0\n"
    excluded = {("p00", "b"), ("p00", "gone")}
    assert carried(header + a + b + gone, Change("edge", text, text), excluded) == header + a
    more = whole([pool, model.Pool("p01")])  # a pool comes: every row is compared
    assert changed_servers(text, more) is None
    assert carried(header + a + b + gone, Change("edge", text, more), excluded) == header + a


def test_a_state_row_is_known_by_its_backend_and_server_names():
    row = "3 p00 1 a 10.0.0.1 2 0 1 1 70 1 0 2 0 0 0 0 - 80 - 0 0 - - 0"
    assert key(row) == ("p00", "a")


def test_rows_are_removed_by_search_exactly_as_row_by_row():
    rng = random.Random(5)
    rows = [f"{b} p{b:02} {s} {'m' if s % 2 else 'p'}{b:02}-{s} 10.0.{b}.{s} 2 0 1 1 7 1 0 2 0 0 0 0 - 80 - 0 0 - - 0"
            for b in range(30) for s in range(4)]
    text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n" + "\n".join(rows) + "\n"
    for _ in range(50):
        picked = {key(row) for row in rng.sample(rows, rng.randint(0, 6))} | {("p03", "nobody"), ("p99", "x")}
        expected = text.split("\n")[:2] + [row for row in rows if key(row) not in picked]
        assert without_rows(text, picked) == "\n".join(expected) + "\n"
