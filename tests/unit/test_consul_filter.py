"""The emulator's go-bexpr subset and Go duration/bool parsing (pure functions)."""

from __future__ import annotations

import pytest

from lbctl_testkit.emulators.consul.durations import format_duration, parse_bool, parse_duration
from lbctl_testkit.emulators.consul.filter import HEALTH_ENTRY, SERVICE_NODE, FilterError, compile_filter

ENTRY = {
    "Node": {"Node": "node-b", "Address": "10.0.1.7", "Meta": {"rack": "r1"}, "TaggedAddresses": {}},
    "Service": {"ID": "web-2", "Service": "web", "Tags": ["v1", "canary"], "Address": "",
                "Meta": {"env": "prod"}, "Port": 8080, "Weights": {"Passing": 10, "Warning": 1},
                "EnableTagOverride": False},
    "Checks": [{"CheckID": "serfHealth", "Status": "passing", "ServiceTags": []},
               {"CheckID": "service:web-2", "Status": "warning", "ServiceTags": ["v1"]}],
}
NO_META = {**ENTRY, "Service": {**ENTRY["Service"], "Meta": None}}


@pytest.mark.parametrize("expr, expected", [
    ('Service.Service == "web"', True),
    ('Service.Service != "web"', False),
    ("Service.Port == 8080", True),
    ("Service.Port == 8081", False),
    ('"canary" in Service.Tags', True),
    ('"CANARY" in Service.Tags', False),
    ('"canary" not in Service.Tags', False),
    ('Service.Tags contains "v1"', True),
    ('Service.Tags not contains "v2"', True),
    ('Service.Meta.env == "prod"', True),
    ('Service.Meta["env"] == `prod`', True),
    ('Service.Meta.missing == ""', True),
    ("Service.Meta.missing is empty", True),
    ('"env" in Service.Meta', True),
    ("Service.Address is empty", True),
    ("Service.Tags is not empty", True),
    ('Node.Meta.rack matches "^r[0-9]+$"', True),
    ('Node.Node not matches "^node-a"', True),
    ('Checks.Status == "warning"', True),
    ('Checks.Status != "passing"', False),  # negation of "any check passing"
    ('Checks.CheckID == "serfHealth" and Checks.Status == "passing"', True),
    ("Service.Weights.Passing == 10", True),
    ("Service.EnableTagOverride == false", True),
    ('Service.Address contains "10."', False),
    ('not Service.Port == 8080', False),
    ('not not Service.Port == 8080', True),
    ('Service.Port == 1 or Service.Port == 8080 and Service.Service == "web"', True),
    ('(Service.Port == 1 or Service.Port == 8080) and Service.Service == "db"', False),
    ('"v" in Service.Service', False),
    ('"we" in Service.Service', True),
    ('"canary" not in Service.Tags and Service.Meta.env == "prod"', False),
    ("Checks is not empty", True),
    ('Service.Service == web', True),  # an unquoted value reads as its text
    ('Service.Meta.env == "pr\\x6fd"', True),
])
def test_expressions(expr, expected):
    assert compile_filter(expr, HEALTH_ENTRY)(ENTRY) is expected


def test_null_meta_reads_as_empty():
    assert compile_filter("Service.Meta is empty", HEALTH_ENTRY)(NO_META)
    assert compile_filter('Service.Meta.env != "prod"', HEALTH_ENTRY)(NO_META)


@pytest.mark.parametrize("expr, message", [
    ("", "no match found"),
    ("Service.Port ==", "expected a value"),
    ('Service.Nope == "x"', 'Selector "Service.Nope" is not valid'),
    ('Nope == "x"', 'Selector "Nope" is not valid'),
    ("Service.Port == abc", "Failed to coerce value"),
    ('(Service.ID == "x"', "Unmatched parentheses"),
    ('Service.ID == "x")', "no match found"),
    ('Service.Tags == "v1"', 'Invalid match operator "Equal"'),
    ('Service.Port matches "8"', 'Invalid match operator "Matches"'),
    ('Service.ID == "x" and', "no match found"),
    ('"x" in', "Invalid selector"),
    ('Service.ID == "unterminated', "Unterminated string literal"),
    ('Service.Meta[env] == "x"', "Invalid index"),
    ('Service.ID matches "("', "Failed to compile regular expression"),
    ('Service.ID == "bad \\d escape"', "invalid syntax"),
])
def test_errors(expr, message):
    with pytest.raises(FilterError, match=message.replace("(", r"\(").replace("[", r"\[")):
        compile_filter(expr, HEALTH_ENTRY)


def test_catalog_selectors():
    row = {"ServiceName": "web", "ServiceTags": ["v1"], "ServiceMeta": {"env": "prod"}, "NodeMeta": {}}
    assert compile_filter('ServiceMeta.env == "prod" and "v1" in ServiceTags', SERVICE_NODE)(row)
    with pytest.raises(FilterError):
        compile_filter('Service.Service == "web"', SERVICE_NODE)


@pytest.mark.parametrize("text, seconds", [
    ("10s", 10), ("5m", 300), ("1m30s", 90), ("60000ms", 60), ("1.5h", 5400), ("0", 0),
    ("-1s", -1), ("300ms", 0.3), ("2h45m", 9900), ("1us", 1e-6), (".5s", 0.5),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1 s", "5 parsecs", "1s ", "--1s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_and_parse_bool():
    assert [format_duration(s) for s in (0, 10, 90, 3600, 0.25)] == ["0s", "10s", "1m30s", "1h0m0s", "250ms"]
    assert parse_bool("True") and parse_bool("1") and not parse_bool("f")
    with pytest.raises(ValueError):
        parse_bool("yes")
