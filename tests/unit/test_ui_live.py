"""What the operator page reads live: HAProxy's ``show stat``, balancer-manager's worker
states, the shared cache of reads, and the tail of the audit log."""

from __future__ import annotations

import json

import pytest

from lbctl.errors import CommandError
from lbctl.targets.apache.balancers import Worker
from lbctl.targets.apache.live import worker_live
from lbctl.targets.haproxy.ctl import parse_stat
from lbctl.ui import live

# HAProxy 2.6's header (abridged to what matters: the columns are found by name)
HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,check_status,check_code,last_chk,addr,"
STAT = HEADER + """
web,FRONTEND,,,3,5,,,OPEN,,,,,,
app,a,0,0,2,4,,9,UP,1,L7OK,200,OK,127.0.0.1:8001,
app,b,0,0,0,0,,0,DOWN,1,L4CON,,Connection refused,127.0.0.1:8002,
app,c,0,0,0,0,,0,MAINT (via app/a),1,,,,127.0.0.1:8003,
app,d,0,0,1,1,,1,DRAIN,0,L7OK,200,OK,127.0.0.1:8004,
app,e,0,0,0,0,,0,no check,1,,,,127.0.0.1:8005,
app,slot3,0,0,0,0,,0,DOWN 1/2,1,L7STS,503,Service Unavailable,127.0.0.1:8006,
app,BACKEND,0,0,3,5,,,UP,2,,,,,
"""


def test_show_stat_gives_each_servers_state_check_and_sessions():
    app = parse_stat(STAT)["app"]
    assert set(app) == {"a", "b", "c", "d", "e", "slot3"}
    assert app["a"] == {"live": "up", "status": "UP", "check": "L7OK 200: OK", "sessions": 2}
    assert app["b"] == {"live": "down", "status": "DOWN", "check": "L4CON: Connection refused", "sessions": 0}
    assert [app[n]["live"] for n in "cde"] == ["maint", "drain", "up"]
    assert app["slot3"]["live"] == "down" and app["slot3"]["check"] == "L7STS 503: Service Unavailable"
    app.aliases["127.0.0.1:8006"] = "slot3"
    assert "127.0.0.1:8006" in app and app["127.0.0.1:8006"]["status"] == "DOWN 1/2"
    assert "127.0.0.1:8001" not in app


def test_show_stat_refuses_an_error_answer():
    with pytest.raises(CommandError, match="unexpected 'show stat' answer: 'Unknown command'"):
        parse_stat("Unknown command\n")


@pytest.mark.parametrize("status, live", [("Init Ok ", "up"), ("Init Dis ", "maint"), ("Init Drn Ok ", "drain"),
                                          ("Init HcFl ", "down"), ("Init Err ", "down"), ("Init Stop ", "maint"),
                                          ("Init ", "unknown")])
def test_balancer_manager_worker_states(status, live):
    found = worker_live(Worker("http://h:1", "h", 1, "r", 1.0, status))
    assert (found["live"], found["check"]) == (live, status)


def test_reads_are_shared_for_a_second_and_per_key():
    now, calls = [0.0], []
    cached = live.Cached(lambda key: calls.append(key) or len(calls), 1.0, lambda: now[0])
    assert (cached.get("a"), cached.get("a")) == (1, 1)
    now[0] = 0.99
    assert cached.get("a") == 1
    now[0] = 1.0
    assert cached.get("a") == 2
    assert cached.get("b") == 3 and calls == ["a", "a", "b"]


def test_the_audit_tail_drops_a_cut_line_and_garbage(tmp_path, monkeypatch):
    path = tmp_path / "audit.log"
    lines = [json.dumps({"n": i, "pad": "x" * 50}) for i in range(100)]
    path.write_text("\n".join(lines[:50]) + "\nnot json\n[1]\n" + "\n".join(lines[50:]) + "\n")
    assert [e["n"] for e in live.tail(path)] == list(range(100))
    monkeypatch.setattr(live, "AUDIT_TAIL", 1000)
    got = [e["n"] for e in live.tail(path)]
    assert got == list(range(100 - len(got), 100)) and 0 < len(got) < 20
    assert live.tail(tmp_path / "missing") == ()


class PageTarget:
    """A target that says which pools the page asked it for."""

    name, kind, shared = "edge", "haproxy", False

    def __init__(self) -> None:
        self.asked: list = []

    def live_members(self, pools=None):
        self.asked.append(pools)
        return {p: {f"{p}-m0": {"live": "up", "check": "L7OK", "sessions": 0}} for p in pools or ()}


def test_a_page_reads_the_live_states_of_its_own_pools_only(monkeypatch):
    from lbctl import model
    from lbctl.ui import view

    monkeypatch.setattr(live, "status_of", lambda t: {"target": t.name, "kind": t.kind})
    target = PageTarget()
    pools = tuple(model.Pool(f"p{i:04d}", (model.Member(f"p{i:04d}-m0", "10.0.0.1", 80),)) for i in range(1000))
    reader = live.Reader(lambda: live.State(model.Desired((), pools), (target,)))
    s = view.status(reader.known(), 0.0, page=3)
    assert target.asked == [tuple(f"p{i:04d}" for i in range(200, 300))]  # the 100 pools shown, not 1,000
    assert s["pools"]["items"][0]["members"][0]["live"] == "up" and s["targets"][0]["live"] == "reported"
    view.status(reader.known(), 0.0, page=3)
    assert len(target.asked) == 1  # shared for a second
    view.status(reader.known(), 0.0, q="p0999")
    assert target.asked[-1] == ("p0999",)


def test_show_stat_answers_chained_with_semicolons():
    from lbctl.targets.haproxy.ctl import parse_stats

    app = STAT.replace("app,", "other,").replace("web,FRONTEND", "x,FRONTEND")
    got = parse_stats(STAT + "\nNo such proxy.\n\n" + app)
    assert set(got) == {"app", "other"} and got["other"]["a"]["check"] == "L7OK 200: OK"
    assert parse_stats("No such proxy.\n\n") == {}
    with pytest.raises(CommandError, match="Permission denied"):
        parse_stats("Permission denied\n")


def test_the_slots_of_some_backends_parse_their_sections_only():
    from lbctl.targets.haproxy import slots

    text = ("global\n    maxconn 10\nbackend a\n    server slot1 10.0.0.1:80\n    server slot2 127.0.0.9:9 disabled\n"
            "\nbackend b\n    server slot1 10.0.0.2:80\nfrontend f\n    bind :80\n")
    assert slots.in_use(text, ["b", "nope"]) == {"b": {"used": {"slot1": "10.0.0.2:80"}, "free": []}}
    assert slots.in_use(text, ["a"]) == {k: v for k, v in slots.in_use(text).items() if k == "a"}


def test_a_stale_status_is_answered_at_once_while_the_next_is_read_in_the_background():
    import threading

    now, calls, release = [0.0], [], threading.Event()

    def slow(key):
        calls.append(key)
        if len(calls) > 1:
            release.wait(10)
        return len(calls)

    cached = live.Cached(slow, 10.0, lambda: now[0], background=True)
    assert cached.get("t") == 1  # the first answer is waited for
    now[0] = 11.0
    assert cached.get("t") == 1 and cached.get("t") == 1  # stale: answered at once, one read under way
    thread = cached.refreshing
    release.set()
    thread.join(5)
    assert cached.get("t") == 2 and calls == ["t", "t"]
    assert cached.get("other") == 3  # another key: waited for
