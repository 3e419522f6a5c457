"""Why an instance is out (consul_model.failing), and that the watcher keeps it beside the
entries: a new check output shows on the operator page without a model change."""

from __future__ import annotations

from lbctl.discovery import consul_model as cm

from tests.unit.test_consul_hunt import watcher


def entry(sid: str, node: str, *checks: dict) -> dict:
    return {"Node": {"Node": node, "Address": "10.0.0.1"},
            "Service": {"ID": sid, "Service": "web", "Port": 80}, "Checks": list(checks)}


def check(cid: str, status: str, output: str = "", name: str = "", sid: str = "") -> dict:
    return {"CheckID": cid, "Name": name or cid, "Status": status, "Output": output, "ServiceID": sid}


def test_the_worst_check_of_each_failing_instance_named_as_the_member_is():
    entries = [entry("a", "n1", check("serfHealth", "passing"), check("http", "warning", "slow", sid="a"),
                     check("tcp", "critical", "refused", "TCP 80", sid="a")),
               entry("b", "n1", check("http", "passing", "ok", sid="b")),
               entry("c", "n1", check("http", "critical", "x" * 1000, sid="c")),
               entry("c", "n2", check("_service_maintenance:c", "critical", name="Service Maintenance Mode",
                                      sid="c") | {"Notes": "kernel upgrade", "Output": ""},
                     check("http", "critical", "down", sid="c"))]
    why = cm.failing(entries)
    assert set(why) == {"a", "c.n1", "c.n2"}  # passing "b" has nothing to say; IDs that collide are qualified
    assert why["a"] == {"name": "TCP 80", "status": "critical", "output": "refused"}
    assert len(why["c.n1"]["output"]) == cm.OUTPUT_MAX and why["c.n1"]["output"].endswith("…")
    assert why["c.n2"] == {"name": "Service Maintenance Mode", "status": "maintenance", "output": "kernel upgrade"}
    assert cm.failing("garbage") == {} and cm.failing([1, {"Service": {}}]) == {}


def test_a_new_output_reaches_the_page_but_changes_no_entries():
    w = watcher()
    changes = []
    w.on_change = changes.append
    name = "svc-1"
    failing = [entry(f"{name}-1", "n1", check(f"service:{name}-1", "critical", "HTTP 503", sid=f"{name}-1"))]
    for output in ("HTTP 503", "HTTP 500"):
        failing[0]["Checks"][0]["Output"] = output
        w.busy.add(name)
        w._read(name, 11, cm.slim(failing), cm.failing(failing))
        assert w.failing_checks([name, "svc-2"]) == {name: {f"{name}-1": {"name": f"service:{name}-1",
                                                                             "status": "critical", "output": output}}}
    assert changes == [{name}]  # passing → critical only: the output alone is no change to apply
    w.busy.add(name)
    w._read(name, 12, cm.slim(failing[:0]), cm.failing([]))
    assert w.failing_checks([name]) == {}
