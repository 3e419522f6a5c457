"""Reading balancer-manager's state and writing its forms (lbctl/targets/apache/balancers.py),
against a page captured from Debian's apache2 2.4.71: a balancer with a configured
member with an HTTP check and timeouts, one with a TCP check, and one added through
balancer-manager (no route)."""

from pathlib import Path

import pytest

from lbctl.errors import CommandError
from lbctl.targets.apache import balancers
from lbctl.targets.apache.balancers import Op

PAGES = Path(__file__).resolve().parents[1] / "golden" / "apache-manager"


@pytest.fixture(scope="module")
def state():
    return balancers.parse_xml((PAGES / "balancers.xml").read_text())


def test_the_xml_gives_members_routes_factors_status_and_nonce(state):
    web = state["web"]
    assert web.nonce == "60dac27a-45e4-3ee1-5887-6a47c5a3da53"
    assert [(w.url, w.host, w.port, w.route, w.loadfactor, w.usable) for w in web.workers] == [
        ("http://127.0.0.1:28091", "127.0.0.1", 28091, "a", 1.0, True),
        ("http://127.0.0.1:28092", "127.0.0.1", 28092, "b", 1.0, True),
        ("http://127.0.0.1:28093", "127.0.0.1", 28093, "", 1.0, True)]


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


def test_the_form_sets_route_factor_and_every_managed_flag():
    op = Op("web", "http://127.0.0.1:28093", "c", 3, frozenset("N"))
    assert balancers.fields(op, "n1") == {
        "b": "web", "w": "http://127.0.0.1:28093", "nonce": "n1", "w_wr": "c", "w_lf": "3",
        "w_status_D": "0", "w_status_N": "1", "w_status_H": "0", "w_status_S": "0"}


def test_disagreements_name_what_was_read(state):
    web = state["web"]
    assert balancers.disagreement(Op("web", "http://127.0.0.1:28091", "a", 1), web.workers[0]) is None
    assert balancers.disagreement(Op("web", "http://127.0.0.1:28091", "a", 2, frozenset("D")), web.workers[0]) == \
        "reads loadfactor 1, status 'Init Ok' (wanted route 'a', loadfactor 2, flags D)"
    assert balancers.disagreement(Op("web", "http://127.0.0.1:28099", "z", 1), None) == "is not in the balancer"
    assert web.worker("127.0.0.1", 28093).route == ""
