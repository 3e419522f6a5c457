"""The change feed's pure parts: which services a check diff names, which catalog
indexes the check feed explains, which service names are safe to ask for."""

import json

import pytest

from lbctl import config
from lbctl.config import consul as consul_config
from lbctl.discovery import checks
from lbctl.discovery.consul import safe_name, selected, service_path
from lbctl.errors import ConfigError


def check(node, cid, service="", status="passing", modify=10, create=10, sid=None):
    return {"Node": node, "CheckID": cid, "Name": "n", "Status": status, "Notes": "", "Output": "out",
            "ServiceID": sid if sid is not None else (f"{service}-1" if service else ""), "ServiceName": service,
            "ServiceTags": ["x"], "Type": "ttl", "Definition": {}, "CreateIndex": create, "ModifyIndex": modify}


def reading(*rows):
    return checks.Reading(json.dumps(list(rows)).encode())


def table(*rows):
    return checks.table(reading(*rows).checks())


BASE = [check("n1", "serfHealth"), check("n1", "service:web-1", "web"), check("n2", "service:api-1", "api")]


def test_table_keeps_only_what_the_diff_needs():
    t = table(*BASE)
    assert set(t) == {("n1", "serfHealth"), ("n1", "service:web-1"), ("n2", "service:api-1")}
    c = t[("n1", "service:web-1")]
    assert (c.ServiceName, c.ServiceID, c.Status, c.ModifyIndex) == ("web", "web-1", "passing", 10)
    with pytest.raises(Exception):
        checks.Reading(b'{"not": "a list"}')


def test_same_answer_is_no_change():
    for since in (0, 10):
        d = checks.diff(table(*BASE), table(*BASE), since)
        assert not d and d.services == set() and d.indexes == set()


def test_status_flip_names_the_service_and_its_index():
    d = checks.diff(table(*BASE), table(BASE[0], check("n1", "service:web-1", "web", "critical", modify=12), BASE[2]), 10)
    assert d.services == {"web"} and d.nodes == set() and d.indexes == {12} and not d.removed


def test_a_node_check_names_the_node_not_a_service():
    d = checks.diff(table(*BASE), table(check("n1", "serfHealth", status="critical", modify=13), *BASE[1:]), 10)
    assert d.nodes == {"n1"} and d.services == set()


def test_a_new_check_marks_its_create_and_modify_index():
    d = checks.diff(table(*BASE), table(*BASE, check("n3", "service:db-1", "db", create=14, modify=15)), 10)
    assert d.services == {"db"} and d.indexes == {14, 15}


def test_a_removed_check_names_its_service():
    d = checks.diff(table(*BASE), table(*BASE[:2]), 10)
    assert d.services == {"api"} and d.removed


def test_a_check_that_moves_to_another_service_names_both():
    d = checks.diff(table(*BASE), table(BASE[0], check("n1", "service:web-1", "www", modify=16), BASE[2]), 10)
    assert d.services == {"web", "www"}


def test_after_an_index_reset_every_field_is_compared():
    lower = check("n1", "service:web-1", "web", "critical", modify=3, create=3)
    assert checks.diff(table(*BASE), table(BASE[0], lower, BASE[2]), 0).services == {"web"}


def test_book_reads_only_indexes_while_the_same_checks_change():
    book = checks.Book(reading(*BASE))
    flip = check("n2", "service:api-1", "api", "critical", modify=20)
    d = book.update(reading(BASE[0], BASE[1], flip), 10)
    assert d.services == {"api"} and d.indexes == {20}
    node = check("n1", "serfHealth", status="critical", modify=21)
    d = book.update(reading(node, BASE[1], flip), 20)
    assert d.nodes == {"n1"} and d.services == set()
    assert not book.update(reading(node, BASE[1], flip), 21)  # nothing written since 21


def test_book_decodes_fully_when_checks_come_or_go():
    book = checks.Book(reading(*BASE))
    d = book.update(reading(*BASE, check("n3", "service:db-1", "db", create=30, modify=30)), 10)
    assert d.services == {"db"} and d.indexes == {30}
    d = book.update(reading(BASE[0], BASE[2], check("n3", "service:db-1", "db", create=30, modify=30)), 30)
    assert d.services == {"web"} and d.removed
    d = book.update(reading(BASE[0], BASE[2], check("n3", "service:db-1", "db", "critical", create=30, modify=31)), 30)
    assert d.services == {"db"}  # the same checks again: the index path


def test_marks_explain_a_catalog_index_by_check_index_or_removal_window():
    marks = checks.Marks()
    marks.add(checks.Diff(services={"web"}, indexes={20}), 10, 20)
    marks.add(checks.Diff(services={"api"}, removed=True), 20, 30)
    assert marks.explains(20) and marks.explains(25) and marks.explains(30)
    assert not marks.explains(19) and not marks.explains(31)
    assert marks.index == 30


def test_marks_are_bounded():
    marks = checks.Marks()
    for i in range(checks.Marks.KEEP + 10):
        marks.add(checks.Diff(services={"s"}, indexes={i}), i, i)
    assert len(marks.indexes) == checks.Marks.KEEP and not marks.explains(0) and marks.explains(checks.Marks.KEEP + 9)


HOSTILE = ["..", ".", "a/b", "../../v1/agent/self", "a?x=1", "a#b", "a%2Fb", "a\nb", "a\x00", "x" * 129, "",
           " web", "web/", "/web", "..%2f..", "a b", "é"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused_before_a_path_is_built(name):
    assert not safe_name(name)
    with pytest.raises(ConfigError, match="service name"):
        service_path(name)


def test_plain_names_need_no_escaping():
    for name in ("web", "api-v2", "a.b_c", "x" * 128, "_svc"):
        assert safe_name(name) and service_path(name) == name


def test_selected_skips_hostile_catalog_names_with_one_problem_each(tmp_path):
    settings = consul_config.consul({"tag": "edge"}, tmp_path)
    names, problems = selected(settings, {"web": ["edge"], "../agent/self": ["edge"], "a/b": ["EDGE"],
                                          "db": ["other"], "consul": []})
    assert names == {"web"}
    assert len(problems) == 2 and all("skipped: its name is not a plain identifier" in p for p in problems)
    assert "'../agent/self'" in " ".join(problems)


def test_max_connections_default_and_bounds(tmp_path):
    assert consul_config.consul({"services": ["web"]}, tmp_path).max_connections == 16
    assert consul_config.consul({"services": ["web"], "max_connections": 190}, tmp_path).max_connections == 190
    path = tmp_path / "lbctl.yml"
    path.write_text("source:\n  consul:\n    services: [web]\n    max_connections: 191\n"
                    "targets:\n  edge: {kind: haproxy, config: out.cfg}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    text = str(err.value)
    assert "\n" not in text and str(path) in text and "source.consul.max_connections" in text and "191" in text
    for bad in (2, 0, "16", True):
        with pytest.raises(ConfigError, match="max_connections"):
            consul_config.consul({"services": ["web"], "max_connections": bad}, tmp_path)


def test_consul_metrics_are_read_at_each_scrape():
    from lbctl.watch.metrics import Metrics

    m = Metrics()
    state = {"age": None, "in_use": 0}
    m.follow_consul(lambda: state["age"], lambda: state["in_use"])
    m.consul_request("service", "429")
    m.consul_request("service", "ok")
    m.consul_request("service", "ok")
    text = m.text().decode()
    assert "lbctl_discovery_data_age_seconds NaN" in text and "lbctl_consul_connections 0.0" in text
    assert 'lbctl_consul_requests_total{endpoint="service",outcome="ok"} 2.0' in text
    assert 'lbctl_consul_requests_total{endpoint="service",outcome="429"} 1.0' in text
    state.update(age=2.5, in_use=7)
    text = m.text().decode()
    assert "lbctl_discovery_data_age_seconds 2.5" in text and "lbctl_consul_connections 7.0" in text


def test_throttle_halves_the_readers_on_a_failure_and_grows_them_back_one_by_one():
    import threading

    from lbctl.discovery.consul import Throttle

    t = Throttle(cap=0.01, most=16, stopped=threading.Event())
    for _ in range(3):
        t.acquire(counted=True)
    assert t.active == 3
    t.release(counted=True, ok=False)
    assert t.limit == 8 and t.delay > 0 and t.until > 0
    t.release(counted=True, ok=False)
    t.release(counted=True, ok=False)
    assert t.limit == 2 and t.active == 0
    for _ in range(4):  # additive: 1/limit per success
        t.acquire(counted=True)
        t.release(counted=True, ok=True)
    assert 3 <= t.limit < 4 and t.delay == 0
    t.acquire(counted=False)  # a blocking query is never held back by the readers' limit
    t.release(counted=False, ok=True)
    assert t.active == 0


def test_slim_keeps_what_members_read_and_leaves_odd_shapes_to_them():
    from lbctl.discovery import consul_model as cm

    entry = {"Node": {"Node": "n1", "Address": "10.0.0.1", "Meta": {"x": "y"}, "CreateIndex": 3},
             "Service": {"ID": "web-1", "Service": "web", "Address": "", "Port": 80, "Weights": {"Passing": 2},
                         "Meta": {"lb-state": "drain"}, "Tags": ["a"], "Proxy": {}, "ModifyIndex": 9},
             "Checks": [{"CheckID": "serfHealth", "Status": "passing", "ServiceID": "", "Output": "long"}]}
    slim = cm.slim([entry, "odd", {"Service": "not a mapping", "Checks": None}])
    assert slim[0] == {"Node": {"Node": "n1", "Address": "10.0.0.1"},
                       "Service": {"ID": "web-1", "Service": "web", "Address": "", "Port": 80,
                                   "Weights": {"Passing": 2}, "Meta": {"lb-state": "drain"}, "Tags": ["a"]},
                       "Checks": [{"CheckID": "serfHealth", "Status": "passing", "ServiceID": ""}]}
    assert slim[1:] == ["odd", {"Node": None, "Service": "not a mapping", "Checks": None}]
    policy = cm.Policy()
    assert cm.members("web", [entry], policy) == cm.members("web", slim[:1], policy)
    assert cm.options("web", [entry]) == cm.options("web", slim[:1])


def compact(rows):
    return json.dumps(rows, separators=(",", ":")).encode()


@pytest.mark.parametrize("kept", [0, 3, 1000])
@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("dump", [compact, lambda rows: json.dumps(rows).encode()])
def test_book_decoding_the_changed_stretch_only_agrees_with_a_whole_decode(seed, dump, kept, monkeypatch):
    """Random flips, additions and removals (several at once, at the ends too, down to no
    check at all): the stretch a reading decodes against the book gives the same diff
    and the same checks as decoding both answers whole; with the moves of the offsets
    kept (up to ``kept`` of them) instead of applied, every offset read is the one a
    whole decode finds."""
    import random

    monkeypatch.setattr(checks.Book, "SHIFTS_KEPT", kept)
    rng = random.Random(seed)
    index = 10
    rows = {(f"n{i}", f"service:s{i}-{k}"): check(f"n{i}", f"service:s{i}-{k}", f"s{i}", modify=index)
            for i in range(rng.randint(0, 6)) for k in range(rng.randint(1, 3))}
    book = checks.Book(checks.Reading(dump([rows[k] for k in sorted(rows)])))
    for _ in range(30):
        since, index = index, index + 1
        for _ in range(rng.randint(1, 3)):
            what = rng.random()
            if rows and what < 0.5:
                key = rng.choice(sorted(rows))
                rows[key] = {**rows[key], "Status": rng.choice(["passing", "critical", "warning"]),
                             "Output": "x" * rng.randint(0, 9), "ModifyIndex": index}
            elif rows and what < 0.7:
                del rows[rng.choice(sorted(rows))]
            else:
                node = f"n{rng.randint(0, 8)}"
                cid = rng.choice(["serfHealth", f"service:a{rng.randint(0, 3)}"])
                rows[node, cid] = check(node, cid, "" if cid == "serfHealth" else cid[8:], create=index, modify=index)
        body = dump([rows[k] for k in sorted(rows)])
        expected = checks.diff(checks.table(book.rows), checks.table(checks.Reading(body).checks()), since)
        r = checks.Reading(body, book)
        assert r.patch is not None or not book.rows  # the stretch path, whenever there is a previous check
        assert book.update(r, since) == expected
        whole = checks.Reading(body)
        assert len(book.shifts) <= max(kept, 1)
        assert [book.end(i) for i in range(len(book.rows))] == whole.ends
        assert book.rows == whole.checks() and book.body == body
    assert book.ends == whole.ends and book.shifts == []


def test_a_stretch_that_is_not_checks_is_refused_and_the_book_is_kept():
    book = checks.Book(reading(*BASE))
    body = book.body.replace(b'"n2"', b'2', 1)
    with pytest.raises(Exception):
        checks.Reading(body, book)
    assert book.update(checks.Reading(book.body, book), 10) == checks.Diff()
