"""A plan with servers named after members renders only the changed pools' backends
and splices them into the previous render: the result must be the whole render's,
byte for byte, whatever changed."""

from __future__ import annotations

import random

from lbctl import config, model
from lbctl.render import render
from lbctl.targets.haproxy.target import splice


def options():
    return config.options("haproxy")


def whole(desired: model.Desired) -> str:
    return render(desired, "haproxy", OPTIONS)


OPTIONS = options()


def test_spliced_renders_equal_whole_renders():
    rng = random.Random(7)
    listeners = (model.Listener("web", 8080, default_pool="p00",
                                routes=(model.Route("p03", host="x.example"), model.Route("p05", path="/api"))),
                 model.Listener("db", 5432, mode="tcp", default_pool="p07"))
    pools = [model.Pool(f"p{i:02}", tuple(model.Member(f"m{j}", f"10.0.{i}.{j + 1}", 80) for j in range(3)),
                        sticky_cookie="SRV" if i == 2 else None, maxconn=50 if i == 4 else None)
             for i in range(12)]
    desired = model.Desired(listeners, tuple(pools))
    text = whole(desired)
    spliced = 0
    for _ in range(300):
        pools = list(desired.pools)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(pools))
            members = list(pools[i].members)
            pick = rng.random()
            if pick < 0.3 and members:
                members.pop(rng.randrange(len(members)))
            elif pick < 0.6:
                members.append(model.Member(f"n{rng.randint(0, 99)}", f"10.9.{i}.{rng.randint(1, 250)}", 80))
            elif members:
                k = rng.randrange(len(members))
                members[k] = model.replace(members[k], weight=rng.randint(1, 9),
                                     state=rng.choice(["enabled", "drain", "maint", "backup"]))
            unique = {m.name: m for m in members}
            pools[i] = model.replace(pools[i], members=tuple(sorted(unique.values(), key=lambda m: m.name)))
        new = model.Desired(listeners, tuple(pools))
        result = splice(lambda d: render(d, "haproxy", OPTIONS), desired, text, new)
        expected = whole(new)
        if result is not None:
            spliced += 1
            assert result == expected
        desired, text = new, expected
    assert spliced == 300


def test_a_change_beyond_the_pools_renders_everything():
    pool = model.Pool("app", (model.Member("a", "10.0.0.1", 80),))
    before = model.Desired((model.Listener("web", 8080, default_pool="app"),), (pool,))
    text = whole(before)
    moved = model.Desired((model.Listener("web", 8081, default_pool="app"),), (pool,))
    assert splice(lambda d: render(d, "haproxy", OPTIONS), before, text, moved) is None
    more = model.Desired(before.listeners, (pool, model.Pool("other")))
    assert splice(lambda d: render(d, "haproxy", OPTIONS), before, text, more) is None
