"""The fast paths for large inventories give exactly what the one-by-one paths give.

Loading: a JSON file decoded by msgspec into typed members and checked in bulk
(inventory.decoded, plain_pools, plain_members) against json.loads and the
per-member validators: the same model, or the same one-line error.
Rendering: backends filled in from the template's own line patterns
(render/lines.py) against Jinja2 rendering every pool, for the packaged
template and for overriding templates that the patterns must refuse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from lbctl import config, inventory, model
from lbctl import validate as v
from lbctl.errors import ConfigError
from lbctl.render import lines, render
from lbctl.render.environment import jinja_environment

ABSENT = object()
NAMES = [ABSENT, None, "m1", "m2", "web-10", "web-2", "bad name", "", 5, "x" * 129, "a\nb", "-a"]
ADDRESSES = [ABSENT, None, "10.0.0.1", "10.0.0.2", "::1", "2001:DB8::1", "Host.Example", "300.1.1.1",
             "01.2.3.4", "1.2.3", "", 7, "1.2.3.4\n", "1.2.3.4\x00"]
PORTS = [ABSENT, None, 80, 81, 0, 65536, "80", True, 8.0, 2**70]
WEIGHTS = [ABSENT, None, 1, 256, 0, 257, True, 2.0]
STATES = [ABSENT, None, "enabled", "drain", "maint", "backup", "bogus", 1]
TAGS = [ABSENT, None, [], ["a"], ["b", "a", "a"], ["bad tag"], "x", [1]]
METAS = [ABSENT, None, {}, {"k": "v"}, {"k": 'bad"v'}, [], [["k", "v"]]]
FIELDS = {"name": NAMES, "address": ADDRESSES, "port": PORTS, "weight": WEIGHTS, "state": STATES,
          "tags": TAGS, "meta": METAS}


# Mostly plain members (so that whole pools take the fast path), sometimes anything.
plain_member = st.builds(lambda n, a, p, w: {"name": f"m{n}", "address": f"10.0.0.{a}", "port": p, "weight": w},
                         st.integers(0, 9), st.integers(1, 6), st.sampled_from([80, 81]), st.integers(1, 3))
any_member = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in FIELDS.items()}).map(
    lambda d: {k: v for k, v in d.items() if v is not ABSENT})
# A plain member with one field changed to (or removed for) any value: each way to
# leave the fast path, one at a time, among plain members.
def changed(member: dict, change: tuple) -> dict:
    key, value = change
    return {k: v for k, v in {**member, key: value}.items() if v is not ABSENT}


one_change = st.sampled_from(list(FIELDS)).flatmap(lambda key: st.tuples(st.just(key), st.sampled_from(FIELDS[key])))
nearly_plain = st.builds(changed, plain_member, one_change)
odd_member = st.one_of(any_member, any_member.map(lambda d: {**d, "bogus": 1}), st.sampled_from([None, 3, []]))
members = st.lists(st.one_of(plain_member, plain_member, plain_member, nearly_plain, odd_member), max_size=5)
pool_body = st.one_of(
    st.builds(lambda ms: {"members": ms}, members),
    st.builds(lambda ms, b: {"balance": b, "members": ms}, members, st.sampled_from(["leastconn", "nope", 3])),
    st.sampled_from([None, {}, {"members": None}, {"members": "x"}, {"bogus": 1}]),
)
documents = st.builds(lambda pools: {"pools": pools},
                      st.dictionaries(st.sampled_from(["a", "b", "c", "d", "bad name", "x\n", "\ny", 4]), pool_body,
                                      max_size=4))


def one_by_one(monkeypatch, load):
    """``load()`` with every fast path switched off: the reference."""
    with monkeypatch.context() as m:
        m.setattr(inventory, "decoded", lambda text: None)
        m.setattr(inventory, "plain_pools", lambda bodies: {})
        m.setattr(inventory, "plain_members", lambda raw: None)
        m.setattr(inventory, "named_bodies", lambda raw: dict(v.named(raw, "pools", lambda n, b, p: (n, b))))
        return outcome(load)


def outcome(load):
    try:
        return load(), None
    except ConfigError as exc:
        return None, str(exc)


@hsettings(max_examples=300, deadline=None, derandomize=True)
@given(doc=documents)
def test_json_inventory_loads_as_one_by_one(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("inv") / "inventory.json"
    path.write_text(json.dumps(doc))
    mp = pytest.MonkeyPatch()
    try:
        expected = one_by_one(mp, lambda: inventory.load(path))
    finally:
        mp.undo()
    assert outcome(lambda: inventory.load(path)) == expected


@hsettings(max_examples=300, deadline=None, derandomize=True)
@given(doc=documents)
def test_mapping_inventory_loads_as_one_by_one(doc):
    """YAML files and discovery hand over dicts: msgspec.convert takes them."""
    mp = pytest.MonkeyPatch()
    try:
        expected = one_by_one(mp, lambda: inventory.from_raw(json.loads(json.dumps(doc))))
    finally:
        mp.undo()
    assert outcome(lambda: inventory.from_raw(json.loads(json.dumps(doc)))) == expected


def test_json_that_msgspec_refuses_is_read_by_json_loads(tmp_path):
    path = tmp_path / "inventory.json"
    # NaN, a byte-order mark, an unknown top-level key: msgspec refuses, json.loads decides.
    path.write_text('{"pools": {"a": {"maxconn": NaN, "members": []}}}')
    assert outcome(lambda: inventory.load(path))[1] == \
        f"{path}: pools.a.maxconn: must be an integer from 1 to 1000000 (got nan)"
    path.write_bytes(b'\xef\xbb\xbf{"pools": {"a": {}}}')
    assert [p.name for p in inventory.load(path).pools] == ["a"]
    path.write_text('{"pool": {}}')
    assert "unknown key 'pool'" in outcome(lambda: inventory.load(path))[1]


def test_plain_json_members_decode_as_the_model_and_the_rest_as_member_in():
    def first(text: str):
        return type(inventory.decoded(text.encode())["pools"]["a"]["members"][0])
    plain = '{"name": "m", "address": "10.0.0.1", "port": 80'
    assert first('{"pools": {"a": {"members": [%s}]}}}' % plain) is model.Member
    assert first('{"pools": {"a": {"members": [%s, "tags": ["b", "a"]}]}}}' % plain) is model.Member
    # no name, a null, meta, any escape (a key spelled with one): the general decoder
    for other in ('{"address": "10.0.0.1", "port": 80}', plain + ', "weight": null}', plain + ', "meta": {}}',
                  plain + ', "t\\u0061gs": ["a"]}', plain + ', "m\\u0065ta": {"k": "v"}}'):
        assert first('{"pools": {"a": {"members": [%s]}}}' % other) is inventory.MemberIn, other


@pytest.mark.parametrize("member,error", [
    ('"t\\u0061gs": ["bad tag"]', "pools.a.members[0].tags[0]: must be a tag"),
    ('"m\\u0065ta": {"k": "bad;"}', "pools.a.members[0].meta.k: must be printable text"),
    ('"st\\u0061te": "bogus"', "pools.a.members[0].state: must be one of"),
    ('"tags": ["b", "bad tag"]', "pools.a.members[0].tags[1]: must be a tag"),
    ('"meta": []', "pools.a.members[0].meta: must be a mapping"),
])
def test_escaped_keys_are_checked_as_any_other(tmp_path, member, error):
    path = tmp_path / "inventory.json"
    path.write_text('{"pools": {"a": {"members": [{"name": "m", "address": "10.0.0.1", "port": 80, %s}]}}}' % member)
    assert error in outcome(lambda: inventory.load(path))[1]


def test_a_large_plain_inventory_takes_the_fast_path(tmp_path, monkeypatch):
    doc = {"pools": {f"p{i}": {"members": [{"name": f"m{m}", "address": f"10.0.{i}.{m + 1}", "port": 80}
                                          for m in range(5)]} for i in range(50)}}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(doc))

    def refuse(*args):
        raise AssertionError("a plain member went one by one")
    monkeypatch.setattr(inventory, "member", refuse)
    desired = inventory.load(path)
    assert len(desired.pools) == 50 and desired.pools[0].members[0] == model.Member("m0", "10.0.0.1", 80)


# -- rendering -------------------------------------------------------------------

def jinja_only(monkeypatch, *args, **kwargs) -> str:
    with monkeypatch.context() as m:
        m.setattr(lines.Backends, "text", lambda self, pool, mode: None)
        m.setattr(lines.Backends, "run_text", lambda self, run, mode, fields: None)
        return render(*args, **kwargs)


def assert_renders_as_jinja(desired: model.Desired) -> None:
    """With the packaged templates: the patterns give what Jinja2 gives for every pool."""
    options = config.options("haproxy")
    mp = pytest.MonkeyPatch()
    try:
        expected = jinja_only(mp, desired, "haproxy", options)
    finally:
        mp.undo()
    assert render(desired, "haproxy", options) == expected


name_st = st.sampled_from(["a", "b-1", "c.2", "d_3"])
member_st = st.builds(
    model.Member, name=name_st,
    address=st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1", "backend.internal", "::1"]),
    port=st.sampled_from([80, 8080]), weight=st.integers(1, 256),
    state=st.sampled_from(model.MEMBER_STATES))
pool_st = st.builds(
    model.Pool, name=st.sampled_from(["api", "web", "x.y"]),
    members=st.lists(member_st, max_size=4, unique_by=lambda m: m.name).map(tuple),
    balance=st.sampled_from(model.BALANCE),
    health=st.sampled_from([model.HealthCheck(), model.HealthCheck("none"), model.HealthCheck("http", "/h", "h.example")]),
    sticky_cookie=st.sampled_from([None, "SID"]), maxconn=st.sampled_from([None, 10]))


@hsettings(max_examples=200, deadline=None, derandomize=True)
@given(pools=st.lists(pool_st, max_size=4, unique_by=lambda p: p.name))
def test_patterns_render_as_jinja(pools):
    desired = model.Desired(pools=tuple(sorted(pools, key=lambda p: p.name)))
    assert_renders_as_jinja(desired)


PACKAGED = (Path(__file__).resolve().parents[2] / "templates" / "haproxy-backend.j2").read_text()
LINE = "    server {{ m.name }} {{ m | endpoint }} weight {{ 0 if m.state == \"drain\" else m.weight }}"

# Overriding backend templates: (template, whether the patterns may take it).
OVERRIDES = [
    (PACKAGED, True),
    ("backend {{ p.name }}\n{% for m in p.members %}# {{ p.name }}/{{ m.name }} {{ m.name }}\n" + LINE + "\n{% endfor %}"
     "# end of {{ p.name }}\n", True),
    ("backend {{ p.name }}\n{% for m in p.members if m.state != 'maint' %}" + LINE + "\n{% endfor %}", True),
    ("backend {{ p.name }}\n{% for m in p.members %}    server s{{ loop.index }} {{ m | endpoint }}\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}" + LINE + "{{ ',' if not loop.last }}\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}" + LINE + " of {{ loop.length }}\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}" + LINE + "{{ ' big' if loop.length > 3 }}\n{% endfor %}", False),
    ("backend {{ p.name }} # {{ p.members | length }}\n{% for m in p.members %}" + LINE + "\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}    server {{ m.name }} weight {{ m.weight * 2 }}\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}    server {{ m.name | upper }}\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}    server {{ m.name }}{{ ' x' if m.name == 'a' }}\n{% endfor %}",
     False),
    ("backend {{ p.name }}\n{% for m in p.members %}    port {{ '%05d' % m.port }}\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}    server {{ m.name }} {{ m.tags | join(',') }}\n{% endfor %}",
     False),
    ("backend {{ p.name }}\n{% for m in p.members | sort(attribute='address') %}" + LINE + "\n{% endfor %}", False),
    ("backend {{ p.name }}\n{% for m in p.members %}" + LINE + "\n{% endfor %}{% for m in p.members %}# {{ m.name }}\n"
     "{% endfor %}", False),
    ("backend {{ p.name }}\n{% set ns = namespace(n=0) %}{% for m in p.members %}{% set ns.n = ns.n + 1 %}"
     "    server s{{ ns.n }} {{ m | endpoint }}\n{% endfor %}", False),
    ("backend {{ p.name | upper }}\n{% for m in p.members %}" + LINE + "\n{% endfor %}", False),
    ("backend {{ p.name }} {{ modes['web'] }}\n{% for m in p.members %}" + LINE + "\n{% endfor %}", False),
]


@pytest.mark.parametrize("template,patterned", OVERRIDES, ids=range(len(OVERRIDES)))
def test_overriding_templates_render_as_jinja(tmp_path, monkeypatch, template, patterned):
    (tmp_path / "haproxy-backend.j2").write_text(template)
    members = (model.Member("a", "10.0.0.1", 80, 3), model.Member("b", "2001:db8::1", 81, state="drain"),
               model.Member("c", "10.0.0.3", 82, state="maint"), model.Member("d", "10.0.0.4", 83))
    desired = model.Desired(pools=(model.Pool("api", members[:1]), model.Pool("web", members),
                                   model.Pool("x", members[3:] + members[:1])))
    options = config.options("haproxy")
    expected = jinja_only(monkeypatch, desired, "haproxy", options, str(tmp_path))
    assert render(desired, "haproxy", options, str(tmp_path)) == expected
    made = lines.backends(jinja_environment(str(tmp_path)), "haproxy-backend.j2", options)
    assert (made.text(desired.pools[1], "http") is not None) == patterned


def test_only_a_template_with_a_risky_word_is_parsed_to_tell_if_it_can_be_patterned(tmp_path, monkeypatch):
    cases = {"plain.j2": (PACKAGED, True, False),
             "comment.j2": ("{# no loop here #}\n" + PACKAGED, True, True),
             "include.j2": ("{% include 'plain.j2' %}", False, True),
             "loop.j2": ("{% for m in p.members %}{{ loop.index }}{% endfor %}", False, True)}
    for name, (text, _, _) in cases.items():
        (tmp_path / name).write_text(text)
    env = jinja_environment(str(tmp_path))
    parsed = []
    monkeypatch.setattr(env, "parse", lambda source, *a: parsed.append(source) or type(env).parse(env, source, *a))
    for name, (text, expected, parses) in cases.items():
        parsed.clear()
        assert lines.eligible(env, name) == expected, name
        assert bool(parsed) == parses, name


def test_a_broken_template_still_reports_its_error(tmp_path):
    (tmp_path / "haproxy-backend.j2").write_text("backend {{ p.name }}\n{% for m in p.members %}{{ m.nosuch }}{% endfor %}")
    desired = model.Desired(pools=(model.Pool("web", (model.Member("a", "10.0.0.1", 80),)),))
    with pytest.raises(ConfigError, match="nosuch"):
        render(desired, "haproxy", config.options("haproxy"), str(tmp_path))


def test_meta_values_allow_printable_ascii_but_quotes_and_delimiters():
    from lbctl import validate as v

    allowed = {c for c in range(0x20, 0x7f)} - {ord(c) for c in "\"#$';\\`{}"}
    for code in [*range(0x3000), 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]:
        assert bool(v.META_VALUE.fullmatch(chr(code))) == (code in allowed), hex(code)


def test_pool_settings_are_checked_once_per_set_but_by_type_too():
    raw = {"pools": {"a": {"health": {"rise": 1}}, "b": {"health": {"rise": True}}}}
    assert outcome(lambda: inventory.from_raw(raw))[1] == \
        "pools.b.health.rise: must be an integer from 1 to 100 (got True)"
    raw = {"pools": {"a": {"maxconn": 1}, "b": {"maxconn": 1.0}}}
    assert outcome(lambda: inventory.from_raw(raw))[1] == \
        "pools.b.maxconn: must be an integer from 1 to 1000000 (got 1.0)"


# Many pools, few distinct settings: consecutive pools of one shape are made as a run
# (lines.Backends.joined), and a run breaks at a pool without members, members of
# mixed states, an IPv6 address or another mode (a tcp listener's pools).
run_member_st = st.builds(model.Member, name=name_st, address=st.sampled_from(["10.0.0.1", "10.0.0.2", "h.internal", "::1"]),
                          port=st.sampled_from([80, 8080]), state=st.sampled_from(["enabled", "enabled", "drain", "backup"]))
run_pool_st = st.builds(
    lambda members, settings: model.Pool("", members, **settings),
    st.lists(run_member_st, max_size=3, unique_by=lambda m: m.name).map(tuple),
    st.sampled_from([{}, {}, {"balance": "leastconn"}, {"health": model.HealthCheck("http", "/h")}, {"maxconn": 5}]))


@hsettings(max_examples=150, deadline=None, derandomize=True)
@given(pools=st.lists(run_pool_st, min_size=1, max_size=12), tcp=st.sets(st.integers(0, 11), max_size=3))
def test_runs_of_pools_render_as_jinja(pools, tcp):
    pools = tuple(model.replace(p, name=f"p{i:02}") for i, p in enumerate(pools))
    listeners = tuple(model.Listener(f"t{i}", 9000 + i, mode="tcp", default_pool=f"p{i:02}") for i in sorted(tcp)
                      if i < len(pools) and not pools[i].sticky_cookie)
    desired = model.Desired(listeners, pools)
    assert_renders_as_jinja(desired)


def test_a_run_of_plain_pools_is_made_at_once(monkeypatch):
    members = tuple(model.Member(f"m{i}", f"10.0.0.{i}", 80) for i in range(1, 4))
    desired = model.Desired(pools=tuple(model.Pool(f"p{i}", members) for i in range(20)))
    monkeypatch.setattr(lines.Backends, "text", lambda self, pool, mode: pytest.fail("a pool was made on its own"))
    assert render(desired, "haproxy", config.options("haproxy")).count("    server m1 10.0.0.1:80 weight 1\n") == 20
