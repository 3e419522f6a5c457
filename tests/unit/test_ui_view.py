"""The operator page's view model (lbctl.ui.view, lbctl.ui.chart): filter, pagination,
provenance, live states, history and chart, from hand-made ``Known`` values."""

from __future__ import annotations

from datetime import datetime, timezone

from lbctl import model
from lbctl.discovery.routes import Refusal
from lbctl.ui import chart, page, view

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc).timestamp()


def at(seconds_ago: float) -> str:
    return datetime.fromtimestamp(NOW - seconds_ago, timezone.utc).isoformat(timespec="milliseconds")


def pools(n: int, members: int = 2) -> tuple[model.Pool, ...]:
    return tuple(model.Pool(f"pool{i:03d}", tuple(model.Member(f"pool{i:03d}-m{j}", "10.0.0.1", 8000 + j,
                                                               state="drain" if j == 1 else "enabled")
                                                  for j in range(members)))
                 for i in range(n))


def known(n: int = 3, **kw) -> view.Known:
    listeners = (model.Listener("web", 80, routes=(model.Route("pool000", host="a.example", path="/x"),
                                                   model.Route("pool001", host="b.example", service="pool001"))),)
    return view.Known(model.Desired(listeners, pools(n)), **kw)


def test_pagination_shows_one_page_of_pools():
    s = view.status(known(250), NOW, page=3)
    assert (s["schema"], s["page"], s["pages"], s["per_page"]) == (1, 3, 3, 100)
    assert [p["name"] for p in s["pools"]["items"]] == [f"pool{i:03d}" for i in range(200, 250)]
    assert s["pools"]["total"] == s["pools"]["matched"] == 250
    assert view.status(known(250), NOW, page=99)["page"] == 3  # past the end: the last page
    assert view.status(known(250), NOW, page=-1)["page"] == 1


def test_the_filter_matches_pool_member_and_route_names_without_case():
    s = view.status(known(20), NOW, q="POOL007-M1")
    assert [p["name"] for p in s["pools"]["items"]] == ["pool007"] and s["pools"]["matched"] == 1
    assert s["listeners"] == []  # no route of that name
    s = view.status(known(20), NOW, q="b.example")
    assert s["pools"]["items"] == []
    assert [(r["host"], r["source"], r["service"]) for r in s["listeners"][0]["routes"]] == [
        ("b.example", "service", "pool001")]
    assert len(view.status(known(20), NOW, q="")["listeners"][0]["routes"]) == 2


def test_provenance_of_pools_and_routes():
    s = view.status(known(3, static=frozenset({"pool000"}), discovered=frozenset({"pool001"})), NOW)
    by_name = {p["name"]: (p["source"], p["settings"]) for p in s["pools"]["items"]}
    assert by_name == {"pool000": ("inventory", "inventory"), "pool001": ("service", "defaults"),
                       "pool002": ("inventory", "defaults")}
    assert [r["source"] for r in s["listeners"][0]["routes"]] == ["inventory", "service"]


def test_live_states_come_from_the_first_target_that_reports_them():
    live = {"edge": {"pool000": {"pool000-m0": {"live": "down", "check": "L4CON", "sessions": 0}}},
            "quiet": "cannot read member states: refused", "nginx": None}
    targets = ({"target": "edge", "kind": "haproxy", "sha256": "ab"}, {"target": "quiet", "kind": "haproxy"},
               {"target": "nginx", "kind": "nginx", "live_note": "not reported by nginx open source"})
    s = view.status(known(1, live=live, targets=targets), NOW)
    m0, m1 = s["pools"]["items"][0]["members"]
    assert (m0["want"], m0["live"], m0["check"], m0["sessions"]) == ("enabled", "down", "L4CON", 0)
    assert (m1["want"], m1["live"], m1["check"], m1["sessions"]) == ("drain", "unknown", "", None)
    assert s["pools"]["items"][0]["counts"] == {"up": 0, "down": 1, "maint": 0, "drain": 0, "unknown": 1}
    assert [t["live"] for t in s["targets"]] == ["reported", "cannot read member states: refused",
                                                  "not reported by nginx open source"]


def test_a_runtime_slot_is_found_by_the_members_address():
    live = {"edge": {"pool000": {"10.0.0.1:8001": {"live": "maint", "check": "", "sessions": 2}}}}
    s = view.status(known(1, live=live, targets=({"target": "edge", "kind": "haproxy"},)), NOW)
    assert [m["live"] for m in s["pools"]["items"][0]["members"]] == ["unknown", "maint"]


def test_targets_refusals_and_discovery_age():
    refused = (Refusal("svc", "a.example/x", "pool000 holds it", "web", "inventory"),)
    s = view.status(known(1, targets=({"target": "edge", "kind": "haproxy", "sha256": "ab", "drift": ["x"],
                                       "last_apply": {"time": at(5), "result": "applied", "message": "m",
                                                      "secret": "no"}, "vrrp": {"VI_1": "MASTER"}},),
                          refusals={"edge": "would remove 3 of 4 members"}, refused_routes=refused,
                          data_age=1.23456, source="consul", role="follower"), NOW)
    t = s["targets"][0]
    assert (t["config_hash"], t["drift"], t["vrrp"], t["refused"]) == ("ab", ["x"], {"VI_1": "MASTER"},
                                                                       "would remove 3 of 4 members")
    assert "secret" not in t["last_apply"] and t["last_apply"]["result"] == "applied"
    assert s["guard_refusals"] == [{"target": "edge", "message": "would remove 3 of 4 members"}]
    assert s["routes_refused"][0]["conflict"] is True and s["routes_refused"][0]["holder"] == "inventory"
    assert s["source"] == {"kind": "consul", "data_age_s": 1.235} and s["role"] == "follower"


def test_history_is_newest_first_with_what_changed():
    audit = tuple({"time": at(100 - i), "target": "edge", "action": "apply", "result": "applied",
                   "message": f"change {i}", "changed": [f"+ member m{i}"], "duration_s": 0.01} for i in range(60))
    h = view.status(known(1, audit=audit), NOW)["history"]
    assert len(h) == view.HISTORY and h[0]["message"] == "change 59"
    assert h[0]["changed"] == {"lines": 1, "added": 1, "removed": 0, "first": ["+ member m59"], "more": 0}


def test_a_first_apply_is_summarized_not_listed():
    # deploy.changed keeps the first 50 lines of a diff and counts the rest
    whole = [f"+    server s{i} 10.0.0.{i}:80" for i in range(48)] + ["-# empty", "-global", "... 1950 more lines"]
    audit = ({"time": at(5), "target": "edge", "action": "apply", "result": "applied", "message": "first",
              "changed": whole},)
    s = view.status(known(1, audit=audit, targets=({"target": "edge", "kind": "haproxy", "last_apply": audit[0]},)),
                    NOW)
    summary = {"lines": 2000, "added": 48, "removed": 2, "first": whole[:view.DIFF_SHOWN], "more": 1995}
    assert s["history"][0]["changed"] == summary and s["targets"][0]["last_apply"]["changed"] == summary
    html = page.html(s, 5)
    assert "2000 changed lines: +48 \u22122" in html
    assert "and 1995 more" in html and whole[view.DIFF_SHOWN] not in html and whole[0] in html
    assert view.diff_summary([]) is None and view.diff_summary(None) is None


def test_the_chart_counts_the_last_hour_and_draws_durations():
    audit = ({"time": at(7200), "result": "applied", "duration_s": 9.0},  # too old
             {"time": at(1800), "action": "apply", "result": "applied", "duration_s": 0.5, "target": "edge"},
             {"time": at(60), "action": "apply", "result": "rolled-back", "duration_s": 1.0, "target": "edge"},
             {"time": at(30), "action": "apply", "result": "refused"},  # nothing was applied
             {"time": "garbage", "result": "applied"})
    c = chart.summary(audit, NOW)
    assert (c["applies"], c["rollbacks"]) == (1, 1)
    assert [(p["duration_s"], p["result"]) for p in c["points"]] == [(0.5, "applied"), (1.0, "rolled-back")]
    slow, fast = c["points"][1], c["points"][0]
    assert slow["y"] < fast["y"]  # longer is higher
    assert fast["x"] == 300.0 and slow["x"] == 590.0
    assert sum(b["applies"] for b in c["buckets"]) == 1 and c["buckets"][-1]["rollbacks"] == 1
    assert chart.summary((), NOW)["max_duration_s"] is None


def test_the_process_line():
    def line(process: dict) -> str:
        return view.status(known(1, targets=({"target": "t", "kind": "haproxy", "process": process},)),
                           NOW)["targets"][0]["process"]

    assert line({"running": True, "master_pid": 42, "workers": [43]}) == "running, master 42"
    assert line({"running": True}) == "running" and line({"running": False}) == "not running"
    assert line({"summary": "unreachable: refused"}) == "unreachable: refused" and line({}) == ""


def test_a_member_kept_out_by_its_discovery_check_says_why_for_the_shown_pools_only():
    asked = []

    def why(names):
        asked.append(list(names))
        return {"pool001": {"pool001-m0": {"name": "http <b>", "status": "critical", "output": "HTTP 503 <i>"}}}

    live = {"edge": {"pool001": {"pool001-m0": {"live": "maint", "check": "L7STS 503"}}}}
    s = view.status(known(250, why=why, discovered=frozenset({"pool001", "pool002", "pool200"}), live=live), NOW)
    assert asked == [["pool001", "pool002"]]  # the discovered pools of page 1, asked once
    m0, m1 = s["pools"]["items"][1]["members"]
    assert m0["discovery_check"] == {"name": "http <b>", "status": "critical", "output": "HTTP 503 <i>"}
    assert m0["check"] == "L7STS 503" and m1["discovery_check"] is None
    html = page.html(s, 5)
    assert 'L7STS 503<span class="discovery-check">; consul: http &lt;b&gt; critical: HTTP 503 &lt;i&gt;</span>' in html
