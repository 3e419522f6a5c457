"""Property: discovery data is untrusted, and nothing in it can inject config.

Hypothesis throws arbitrary values into every field of a small inventory.  Each
one must end in either a clean, one-line ConfigError, or configs that (a) have
exactly the lines the templates write — same count, and each line the same shape
of words and punctuation as with a harmless value — and (b) pass the real
``haproxy -c`` and ``nginx -t``.
"""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, assume, given, settings as hsettings, strategies as st

from lbctl import config, inventory, kinds
from lbctl.discovery import consul_model, merge
from lbctl.errors import ConfigError, ValidationError
from lbctl.render import render
from lbctl.targets import check
from lbctl_testkit.support import find_binary, requires_haproxy, requires_nginx

pytestmark = [*requires_haproxy, *requires_nginx]
WORK = None  # set by the fixture: a directory with a real certificate


def base(cert: str) -> dict:
    return {
        "listeners": {"front": {
            "address": "127.0.0.1", "port": 18080, "default_pool": "app", "tls": {"cert": cert},
            "routes": [{"host": "h.example.com", "path": "/p/", "pool": "app"}]}},
        "pools": {"app": {
            "balance": "roundrobin", "sticky_cookie": "SID", "maxconn": 10, "connect_timeout": "2s",
            "health": {"type": "http", "path": "/health", "host": "h.example.com", "expect_status": 200,
                       "interval": "2s", "rise": 2, "fall": 3},
            "members": [{"name": "m1", "address": "127.0.0.1", "port": 9001, "weight": 5,
                         "tags": ["t1"], "meta": {"k": "v"}}]}},
    }


def rename_pool(raw, value):
    raw["pools"] = {value: raw["pools"]["app"]}
    raw["listeners"]["front"]["default_pool"] = value
    raw["listeners"]["front"]["routes"][0]["pool"] = value


def setter(*path):
    def put(raw, value):
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return put


MEMBER = ("pools", "app", "members", 0)
HEALTH = ("pools", "app", "health")
FIELDS = {
    "listener name": lambda raw, value: raw.update(listeners={value: raw["listeners"]["front"]}),
    "listener address": setter("listeners", "front", "address"),
    "listener port": setter("listeners", "front", "port"),
    "route host": setter("listeners", "front", "routes", 0, "host"),
    "route path": setter("listeners", "front", "routes", 0, "path"),
    "client timeout": setter("listeners", "front", "client_timeout"),
    "pool name": rename_pool,
    "sticky cookie": setter("pools", "app", "sticky_cookie"),
    "maxconn": setter("pools", "app", "maxconn"),
    "connect timeout": setter("pools", "app", "connect_timeout"),
    "health path": setter(*HEALTH, "path"),
    "health host": setter(*HEALTH, "host"),
    "health status": setter(*HEALTH, "expect_status"),
    "health interval": setter(*HEALTH, "interval"),
    "health rise": setter(*HEALTH, "rise"),
    "member name": setter(*MEMBER, "name"),
    "member address": setter(*MEMBER, "address"),
    "member port": setter(*MEMBER, "port"),
    "member weight": setter(*MEMBER, "weight"),
    "member tag": setter(*MEMBER, "tags", 0),
    "meta value": setter(*MEMBER, "meta", "k"),
    "meta key": lambda raw, value: raw["pools"]["app"]["members"][0].update(meta={value: "v"}),
    "tls cert": setter("listeners", "front", "tls", "cert"),
}
ENUMS = {
    "balance": (setter("pools", "app", "balance"), ("roundrobin", "leastconn", "source", "random")),
    "member state": (setter(*MEMBER, "state"), ("enabled", "drain", "maint", "backup")),
    "mode": (setter("listeners", "front", "mode"), ("http", "tcp")),
    "health type": (setter(*HEALTH, "type"), ("none", "tcp", "http")),
}
# Values that are well formed but name something outside the config: the target
# may reject them (a missing file; a host name nginx cannot resolve), and must
# do so cleanly.  Host names are never checked for real, so no test sends DNS.
EXTERNAL = {"tls cert", "listener address"}
NO_REAL_CHECK = {"member address"}

SYNTAX = " \n\t\r;{}#\"'\\$`[]()<>|&*!?,=+%@~^/:.-_aZ09é\x00\u2028"
values = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=SYNTAX, max_size=16),
    st.integers(min_value=-5, max_value=70_000),
    st.booleans(),
    st.floats(allow_nan=False, width=16),
    st.lists(st.text(max_size=3), max_size=2),
    st.sampled_from(["web", "a.example.com", "/ok/", "10.0.0.1", "::1", "2s", "SID2", "/etc/passwd",
                     "x\nserver evil 1.2.3.4:80", "x;return 200", "a } server { listen 81", "$host",
                     "80 backup", "1.2.3.4:80", "0", "65535", "256", "/p/ ", "if", "default", "250ms", "1500ms",
                     "1", "1h", 1]),
)
SHAPE = re.compile(r"[^\s;{}#\"'\\]+")


def shape(line: str) -> str:
    return SHAPE.sub("w", line)


@lru_cache(maxsize=None)
def real_check(kind: str, text: str) -> str | None:
    """None if the target accepts ``text``, else its error (cached: many examples render alike)."""
    path = WORK / kinds.get(kind).config_name
    path.write_text(text)
    try:
        check.check(kind, path, find_binary(kind))
    except ValidationError as exc:
        return str(exc)
    return None


def options(kind):
    if kind == "haproxy":
        return config.options("haproxy", {"stats_socket": f"{WORK}/s.sock", "state_file": f"{WORK}/state"})
    return config.options("nginx", {"pid_file": f"{WORK}/nginx.pid", "error_log": f"{WORK}/error.log",
                                      "temp_dir": str(WORK)})


@pytest.fixture(scope="module", autouse=True)
def workdir(tmp_path_factory):
    global WORK
    WORK = tmp_path_factory.mktemp("hostile")
    cert = WORK / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", str(cert), "-out", str(cert), "-days", "1"], check=True, capture_output=True)
    return WORK


def outcome(field_set, value):
    raw = base(str(WORK / "cert.pem"))
    try:
        field_set(raw, value)
    except TypeError:  # an unhashable mapping key: no YAML or JSON document holds one
        assume(False)
    try:
        return inventory.from_raw(raw), None
    except ConfigError as exc:
        return None, str(exc)


# Values that change the layout on purpose (not an injection): a route on "/" takes the
# place of the listener's default location in nginx (one location block fewer).
RESHAPING = {("route path", "/")}


def reshaping(name, value) -> bool:
    """A wildcard host is one more ACL word in HAProxy (``-m end``); a long host name has
    nginx size its server-name hash (two more lines)."""
    wide = name == "route host" and isinstance(value, str) and (value.startswith("*.") or len(value) > 24)
    return (name, value) in RESHAPING or wide


def assert_clean_error(message: str):
    assert message and "\n" not in message and "\r" not in message and len(message) < 400, message


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_no_value_injects_config(name):
    # The reference: the same inventory with the harmless value base() puts in the field.
    desired = inventory.from_raw(base(str(WORK / "cert.pem")))
    reference = {kind: render(desired, kind, options(kind)).splitlines() for kind in ("haproxy", "nginx")}

    @hsettings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(value=values)
    def prop(value):
        desired, error = outcome(FIELDS[name], value)
        if error is not None:
            assert_clean_error(error)
            return
        for kind in ("haproxy", "nginx"):
            try:
                lines = render(desired, kind, options(kind)).splitlines()
            except ConfigError as exc:
                assert_clean_error(str(exc))
                continue
            expected = reference[kind]
            if not reshaping(name, value):
                assert len(lines) == len(expected), f"{kind}: {value!r} changed the number of lines"
                for got, want in zip(lines, expected):
                    if got != want:
                        assert shape(got) == shape(want), f"{kind}: {value!r} changed the shape of {want!r} into {got!r}"
            if name in NO_REAL_CHECK:
                continue
            problem = real_check(kind, "\n".join(lines) + "\n")
            if problem is not None:
                assert name in EXTERNAL, f"{kind} rejected {value!r} in {name}: {problem}"
                assert_clean_error(problem)

    prop()


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enums_take_only_their_values(name):
    field_set, choices = ENUMS[name]

    @hsettings(max_examples=60, deadline=None, derandomize=True)
    @given(value=st.one_of(values, st.sampled_from(choices)))
    def prop(value):
        desired, error = outcome(field_set, value)
        if error is not None:
            assert_clean_error(error)
        else:
            assert value in choices or value is None

    prop()


# -- routes services declare (Meta lb-route, lb-listener) ----------------------------

ROUTE_VALUES = st.one_of(
    values.filter(lambda x: isinstance(x, str)),
    # each syntax character inside an otherwise good path, and in a host
    st.sampled_from(SYNTAX).map(lambda c: f"s.apps.example.com/p{c}q/"),
    st.sampled_from(SYNTAX).map(lambda c: f"s{c}q.apps.example.com"),
    st.tuples(st.sampled_from(["s.apps.example.com/", "*.x.apps.example.com/p", "s.apps.example.com"]),
              st.text(alphabet=SYNTAX, max_size=8)).map("".join),
    st.lists(st.sampled_from(["s.apps.example.com", "/p/", "*.x.apps.example.com", ",", "/", "x\nuse_backend evil",
                              "a;b", "{", " ", "..", "%2e", "#"]), max_size=6).map("".join),
)
ROUTE_SHAPES = ["s.apps.example.com", "s.apps.example.com/p/q/", "*.x.apps.example.com", "*.x.apps.example.com/p/"]


def discovered(meta: dict):
    """The model of a listener that accepts *.apps.example.com and a service declaring ``meta``."""
    raw = base(str(WORK / "cert.pem"))
    raw["listeners"]["front"]["accept_routes"] = ["*.apps.example.com"]
    entry = {"Node": {"Node": "n1", "Address": "127.0.0.1"}, "Checks": [],
             "Service": {"ID": "svc-1", "Service": "svc", "Address": "127.0.0.1", "Port": 9002, "Meta": meta,
                         "CreateIndex": 5}}
    return merge.from_entries(inventory.parts(raw), {"svc": [entry]}, consul_model.Policy())


@lru_cache(maxsize=None)
def allowed_shapes(kind: str) -> frozenset[str]:
    """The shapes of every line the templates write for the service routes that may be declared."""
    out = set()
    for route in ROUTE_SHAPES:
        desired, _ = discovered({"lb-route": route})
        out |= {shape(line) for line in render(desired, kind, options(kind)).splitlines()}
    return frozenset(out)


@pytest.mark.parametrize("key", ["lb-route", "lb-listener"])
def test_no_declared_route_injects_config(key):
    @hsettings(max_examples=150, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(value=ROUTE_VALUES)
    def prop(value):
        meta = {"lb-route": value} if key == "lb-route" else {"lb-route": "s.apps.example.com/p/", "lb-listener": value}
        desired, problems = discovered(meta)  # never raises: a bad value is a warning
        for text in problems:
            assert_clean_error(text)
            assert text.startswith("consul service svc")
        for kind in ("haproxy", "nginx"):
            text = render(desired, kind, options(kind))
            for line in text.splitlines():
                assert shape(line) in allowed_shapes(kind), f"{kind}: {value!r} made the line {line!r}"
            problem = real_check(kind, text)
            assert problem is None, f"{kind} rejected {value!r} in {key}: {problem}"

    prop()
