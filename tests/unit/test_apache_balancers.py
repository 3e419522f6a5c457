"""Reading balancer-manager's pages and writing its forms (lbctl/targets/apache/balancers.py),
against pages captured from Debian's apache2 2.4.71: a balancer with growth=2, a
configured member with an HTTP check and timeouts, one with a TCP check, and one
added through balancer-manager (no route yet, health check set by hand)."""

from pathlib import Path

import pytest

from lbctl.errors import CommandError
from lbctl.targets.apache import balancers
from lbctl.targets.apache.balancers import Health, Op

PAGES = Path(__file__).resolve().parents[1] / "golden" / "apache-manager"


@pytest.fixture(scope="module")
def state():
    found = balancers.parse_xml((PAGES / "balancers.xml").read_text())
    return balancers.merge(found, balancers.parse_html((PAGES / "balancers.html").read_text()))


def test_the_xml_gives_members_routes_factors_status_and_nonce(state):
    web = state["web"]
    assert web.nonce == "60dac27a-45e4-3ee1-5887-6a47c5a3da53"
    assert [(w.url, w.host, w.port, w.route, w.loadfactor, w.usable) for w in web.workers] == [
        ("http://127.0.0.1:28091", "127.0.0.1", 28091, "a", 1.0, True),
        ("http://127.0.0.1:28092", "127.0.0.1", 28092, "b", 1.0, True),
        ("http://127.0.0.1:28093", "127.0.0.1", 28093, "", 1.0, True)]
    # connection settings: printed only when configured (the first member's timeouts)
    assert dict(web.workers[0].fixed) == {"min": "0", "smax": "25", "max": "25", "ttl": "0", "timeout": "30",
                                          "connectiontimeout": "0"}
    assert web.workers[1].fixed == web.workers[2].fixed == (("min", "0"), ("smax", "25"), ("max", "25"), ("ttl", "0"))


def test_the_html_gives_room_and_health_checks(state):
    web = state["web"]
    assert (web.max_members, web.free) == (4, 1)
    assert [w.health for w in web.workers] == [Health("GET", 2000, 2, 3, "/health", ""), Health("TCP", 2000, 1, 1, "", ""),
                                               Health("GET", 3000, 2, 4, "/x", "")]


@pytest.mark.parametrize("status, flags, usable", [
    ("Init Ok ", "", True), ("Init Dis ", "D", False), ("Init Drn Ok ", "N", True), ("Init Stby Ok ", "H", True),
    ("Init Stop ", "S", False), ("Init HcFl ", "C", False), ("Init Err ", "E", False)])
def test_status_words_are_flags(status, flags, usable):
    worker = balancers.Worker("http://h:1", "h", 1, "r", 1.0, status)
    assert (worker.flags, worker.usable) == (frozenset(flags), usable)


@pytest.mark.parametrize("text", ["<html>not xml</html", "<other/>", ""])
def test_anything_else_is_a_one_line_error(text):
    with pytest.raises(CommandError, match="balancer-manager"):
        balancers.parse_xml(text)


def test_a_page_without_health_columns_has_no_health():
    page = (PAGES / "balancers.html").read_text()
    cut = page.replace("<td>GET</td><td>2000ms</td><td>2 (0)</td><td>3 (0)</td><td>/health</td><td>", "<td>")
    assert balancers.parse_html(cut)["web"][1].get("http://127.0.0.1:28091") is None


def test_the_form_sets_route_factor_every_managed_flag_and_the_check():
    op = Op("web", "http://127.0.0.1:28093", "c", 3, frozenset("N"), health=Health("TCP", 2000, 1, 1, "", ""))
    assert balancers.fields(op, "n1") == {
        "b": "web", "w": "http://127.0.0.1:28093", "nonce": "n1", "w_wr": "c", "w_lf": "3",
        "w_status_D": "0", "w_status_N": "1", "w_status_H": "0", "w_status_S": "0",
        "w_hm": "TCP", "w_hi": "2000", "w_hp": "1", "w_hf": "1", "w_hu": "", "w_he": ""}


def test_disagreements_name_what_was_read(state):
    web = state["web"]
    assert balancers.disagreement(Op("web", "http://127.0.0.1:28091", "a", 1), web.workers[0]) is None
    assert balancers.disagreement(Op("web", "http://127.0.0.1:28091", "a", 2, frozenset("D")), web.workers[0]) == \
        "reads loadfactor 1, status 'Init Ok' (wanted route 'a', loadfactor 2, flags D)"
    assert balancers.disagreement(Op("web", "http://127.0.0.1:28099", "z", 1, add=True), None) == \
        "is not in the balancer (no free slot: growth used up?)"
    assert web.worker("127.0.0.1", 28093).route == ""
