"""Inventories: YAML (or JSON) files of listeners, pools and members → ``Desired``.

The format is documented in docs/inventory.md.  Errors name the file, the path
inside it and the reason, on one line; unknown keys are errors.

Members have a fast path, for inventories of 100,000 of them (lbctl/bulk.py): a
JSON file is decoded by msgspec in C straight into the model's ``Member``
structs, or into ``MemberIn`` ones when the file has members the model cannot
hold as they are (keys, types and ranges checked on the way), and a pool whose
members are all of the plain kind (a name, an IPv4 address, no tags or meta, no
repeats) is checked in bulk and built without a Python call per field.  Anything else (a value msgspec
refuses, a host name, tags, an error) takes the one-by-one path, which accepts
the same inputs, builds the same model and gives the same errors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import msgspec

from lbctl import bulk, model
from lbctl import validate as v
from lbctl.bulk import DECODED, TOP_KEYS, MemberIn, decoded, plain_members, plain_pools, repeats
from lbctl.errors import ConfigError

DEFAULT_KEYS = ("pool", "listener")
POOL_KEYS = ("balance", "health", "connect_timeout", "server_timeout", "sticky_cookie", "maxconn", "dns", "members")
HEALTH_KEYS = ("type", "path", "host", "expect_status", "interval", "rise", "fall")
MEMBER_KEYS = MemberIn.__struct_fields__
LISTENER_KEYS = ("address", "port", "mode", "default_pool", "routes", "tls", "client_timeout", "accept_routes")
ROUTE_KEYS = ("host", "path", "pool")
TLS_KEYS = ("cert", "key")



def load(path: str | Path) -> model.Desired:
    """Read, validate and canonicalize one inventory file.

    :raises ConfigError: unreadable file, bad YAML, or any invalid value.
    """
    return built(Path(path), from_raw)


def load_parts(path: str | Path) -> Parts:
    """Like ``load``, for an inventory whose pools discovery fills in."""
    return built(Path(path), parts)


def built(path: Path, build):
    """``build`` applied to the file's data, with errors prefixed by the file's name."""
    raw = read(path)
    try:
        return build(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read inventory: {exc.strerror}") from None
    if path.suffix == ".json":
        fast = decoded(text)
        if fast is not None:
            return fast
    import json  # here: what msgspec decodes needs neither

    import yaml

    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {reason}") from None


@dataclass(frozen=True)
class Parts:
    """An inventory before its pools are built: discovery fills pools into it."""

    pool_defaults: Mapping
    pools: Mapping[str, Any]  # raw pool bodies by (validated) name
    listeners: tuple[model.Listener, ...]
    plain: Mapping[str, list[model.Member]] = dataclasses.field(default_factory=dict)  # see plain_pools

    def pool(self, name: str, body: Any = None, path: str | None = None) -> model.Pool:
        """Pool ``name`` built from ``body`` (default: the inventory's own) over the defaults."""
        if body is None:
            return pool(name, self.pools.get(name), path or f"pools.{name}", self.pool_defaults, self.plain.get(name))
        return pool(name, body, path or f"pools.{name}", self.pool_defaults)


def parts(raw: Any) -> Parts:
    """Check an inventory's structure, defaults and listeners; leave its pools raw."""
    data = v.fields({} if raw is None else raw, "", TOP_KEYS)
    if data.get("version", 1) != 1:
        raise v.fail("version", "must be 1", data.get("version"))
    defaults = v.fields(data.get("defaults") or {}, "defaults", DEFAULT_KEYS)
    pool_defaults = v.fields(defaults.get("pool") or {}, "defaults.pool", POOL_KEYS[:-2])  # not dns: a name is one pool's
    listener_defaults = v.fields(defaults.get("listener") or {}, "defaults.listener", ("address", "client_timeout"))
    pools = named_bodies(data.get("pools") or {})
    listeners = v.named(data.get("listeners") or {}, "listeners",
                        lambda n, b, p: listener(n, b, p, listener_defaults))
    return Parts(pool_defaults, pools, listeners, plain_pools(pools))


def named_bodies(raw: Any) -> dict[str, Any]:
    """The pools' bodies by name, sorted, their names checked (all at once when they are
    strings: a file of 10,000 pools); ``v.named`` gives the error for a bad one."""
    names = list(raw) if type(raw) is dict else None
    if names and all(type(n) is str for n in names) and bulk.NAMES.fullmatch("\n".join(names) + "\n"):
        if "\n" not in "".join(names):  # the pattern's lines are then the names
            return dict(sorted(raw.items()))
    return dict(v.named(raw, "pools", lambda n, b, p: (n, b)))


def from_raw(raw: Any) -> model.Desired:
    """Build the model from parsed inventory data (paths in errors are relative to it)."""
    p = parts(raw)
    return v.canonical(p.listeners, all_pools(p))


def all_pools(p: Parts) -> tuple[model.Pool, ...]:
    """Every pool of ``p``, sorted by name: ``p.pool(name)`` each, but for pools that
    have only plain members (``p.plain``) and no settings of their own, which share
    the first such pool's settings."""
    names = sorted(p.pools)
    shared = None
    out = []
    for name in names:
        body, built = p.pools[name], p.plain.get(name)
        if built is None or type(body) is not dict or len(body) != 1:
            out.append(p.pool(name))
        elif shared is None:
            first = p.pool(name)
            out.append(first)
            shared = msgspec.structs.astuple(first)[2:]
        else:
            out.append(model.Pool(name, tuple(built), *shared))
    return tuple(out)


def pool(name: str, raw: Any, path: str, defaults: Mapping, built: list[model.Member] | None = None) -> model.Pool:
    """Pool ``name`` from its raw body; ``built``: its members, already built by ``plain_pools``."""
    body = v.fields(raw if raw is not None else {}, path, POOL_KEYS)
    key = settings_key(defaults, body)
    hit = _fields.get(key) if key is not None else None
    if hit is not None and hit[0] is defaults:  # the health mappings were checked too
        return model.Pool(name, pool_members(body, path, built), *hit[1])
    health = {**(v.mapping(defaults.get("health") or {}, "defaults.pool.health")),
              **(v.mapping(body.get("health") or {}, f"{path}.health"))}
    built = pool_members(body, path, built)
    fields = pool_fields({**defaults, **body}, health, path)
    if key is not None:
        if len(_fields) >= 1000:  # inventories re-read by a long watch
            _fields.clear()
        _fields[key] = (defaults, fields)  # holding ``defaults`` keeps its id from being reused
    return model.Pool(name, built, *fields)


def settings_key(defaults: Mapping, body: Mapping) -> tuple | None:
    """What a pool's settings depend on: pools mostly share them, so each distinct
    set (over the same defaults) is checked once.  The key holds the types too,
    since True == 1 and 1.0 == 1 but only 1 is valid.  None: not hashable."""
    if len(body) == 1 and "members" in body:
        return (id(defaults),)
    try:
        key = (id(defaults), *((k, type(x), tuple((hk, type(hx), hx) for hk, hx in x.items()) if type(x) is dict else x)
                               for k, x in body.items() if k != "members"))
        hash(key)
    except TypeError:  # an unhashable (so invalid) value
        return None
    return key


_fields: dict[tuple, tuple] = {}


def pool_members(body: Mapping, path: str, built: list[model.Member] | None) -> tuple[model.Member, ...]:
    return tuple(built) if built is not None else members(body.get("members") or [], f"{path}.members")


def pool_fields(merged: Mapping, health: Mapping, path: str) -> tuple:
    """A pool's fields after its name and members, in order."""
    base = model.Pool("")
    return (
        v.optional(merged, "balance", path, v.choice, base.balance, model.BALANCE),
        health_check(health, f"{path}.health"),
        v.optional(merged, "connect_timeout", path, v.duration_ms, base.connect_timeout_ms),
        v.optional(merged, "server_timeout", path, v.duration_ms, base.server_timeout_ms),
        v.optional(merged, "sticky_cookie", path, v.pattern, None, v.COOKIE, "a cookie name of letters, digits and '_'"),
        v.optional(merged, "maxconn", path, v.integer, None, 1, 1_000_000),
        v.optional(merged, "dns", path, v.dns_name, None),
    )


def health_check(raw: Mapping, path: str) -> model.HealthCheck:
    data = v.fields(raw, path, HEALTH_KEYS)
    base = model.HealthCheck()
    return model.HealthCheck(
        type=v.optional(data, "type", path, v.choice, base.type, model.CHECK_TYPES),
        path=v.optional(data, "path", path, v.url_path, base.path),
        host=v.optional(data, "host", path, v.hostname, None),
        expect_status=v.optional(data, "expect_status", path, v.integer, base.expect_status, 100, 599),
        interval_ms=v.optional(data, "interval", path, v.duration_ms, base.interval_ms),
        rise=v.optional(data, "rise", path, v.integer, base.rise, 1, 100),
        fall=v.optional(data, "fall", path, v.integer, base.fall, 1, 100),
    )


def members(raw: Any, path: str) -> tuple[model.Member, ...]:
    built = plain_members(raw)
    if built is None:
        built = [member(item, path, i) for i, item in enumerate(v.sequence(raw, path))]
        if repeats([m.name for m in built], [m.address for m in built], [m.port for m in built]):
            duplicates(built, path)
    built.sort(key=bulk.by_name)
    return tuple(built)


def duplicates(built: list[model.Member], path: str) -> None:
    """Raise the error for the first member that repeats a name or an endpoint."""
    names: dict[str, int] = {}
    endpoints: dict[tuple[str, int], int] = {}
    for i, m in enumerate(built):
        if m.name in names:
            raise v.fail(f"{path}[{i}].name", f"repeats the name of {path}[{names[m.name]}]", m.name)
        if (m.address, m.port) in endpoints:
            raise v.fail(f"{path}[{i}]", f"{m.address}:{m.port} repeats {path}[{endpoints[m.address, m.port]}]")
        names[m.name] = endpoints[m.address, m.port] = i


_MEMBER_KEYSET = frozenset(MEMBER_KEYS)


def member(raw: Any, base: str, index: int) -> model.Member:
    # The common, valid case is checked inline; anything else goes through the
    # validators for its error.
    if type(raw) in DECODED:  # decoded from JSON, not plain: see plain_members
        # A Member's meta is () (see ``decoded``); its tags, a tuple, are checked as the list they were.
        raw = {k: list(x) if type(x) is tuple else x for k, x in msgspec.structs.asdict(raw).items() if x != ()}
    if type(raw) is not dict or not raw.keys() <= _MEMBER_KEYSET:
        v.fields(raw, f"{base}[{index}]", MEMBER_KEYS)
    addr, port = raw.get("address"), raw.get("port")
    if not (type(addr) is str and v.is_ipv4(addr)):
        addr = v.address(addr, f"{base}[{index}].address") if addr is not None else v.required(f"{base}[{index}].address")
    if not (type(port) is int and 0 < port < 65536):
        port = v.port(port, f"{base}[{index}].port") if port is not None else v.required(f"{base}[{index}].port")
    get = raw.get
    name, weight, state, tags, meta = get("name"), get("weight"), get("state"), get("tags"), get("meta")
    if name is None:
        name = v.derived_name(addr, port)
    elif not (type(name) is str and v.IDENT.fullmatch(name)):
        name = v.ident(name, f"{base}[{index}].name")
    if weight is None:
        weight = 1
    elif not (type(weight) is int and model.WEIGHT_MIN <= weight <= model.WEIGHT_MAX):
        weight = v.integer(weight, f"{base}[{index}].weight", model.WEIGHT_MIN, model.WEIGHT_MAX)
    return model.Member(
        name, addr, port, weight,
        "enabled" if state is None else v.choice(state, f"{base}[{index}].state", model.MEMBER_STATES),
        () if tags is None else v.tags(tags, f"{base}[{index}].tags"),
        () if meta is None else v.meta(meta, f"{base}[{index}].meta"),
    )


def listener(name: str, raw: Any, path: str, defaults: Mapping) -> model.Listener:
    data = {**defaults, **v.fields(raw, path, LISTENER_KEYS, ("port",))}
    mode = v.optional(data, "mode", path, v.choice, "http", model.MODES)
    routes = tuple(route(r, f"{path}.routes[{i}]") for i, r in enumerate(v.sequence(data.get("routes") or [], f"{path}.routes")))
    if mode == "tcp" and routes:
        raise v.fail(f"{path}.routes", "tcp listeners cannot route by host or path; use default_pool")
    seen = set()
    for i, r in enumerate(routes):
        if (r.host, r.path) in seen:
            raise v.fail(f"{path}.routes[{i}]", "repeats an earlier route's host and path")
        seen.add((r.host, r.path))
    default_pool = v.optional(data, "default_pool", path, v.ident, None)
    accept = v.host_patterns(data.get("accept_routes"), f"{path}.accept_routes")
    if mode == "tcp" and accept:
        raise v.fail(f"{path}.accept_routes", "tcp listeners cannot route by host; only http listeners accept routes")
    if default_pool is None and not routes and not accept:
        raise v.fail(path, "needs a default_pool, routes or accept_routes")
    tls = v.fields(data.get("tls") or {}, f"{path}.tls", TLS_KEYS)
    if tls and "cert" not in tls:
        raise v.fail(f"{path}.tls.cert", "is required when tls is set")
    base = model.Listener(name, 1)
    return model.Listener(
        name=name,
        port=v.port(data["port"], f"{path}.port"),
        address=v.optional(data, "address", path, v.ip, base.address),
        mode=mode,
        default_pool=default_pool,
        routes=tuple(sorted(routes, key=model.Route.sort_key)),
        tls_cert=v.optional(tls, "cert", f"{path}.tls", v.file_path, None),
        tls_key=v.optional(tls, "key", f"{path}.tls", v.file_path, None),
        client_timeout_ms=v.optional(data, "client_timeout", path, v.duration_ms, base.client_timeout_ms),
        accept_routes=accept,
    )


def route(raw: Any, path: str) -> model.Route:
    data = v.fields(raw, path, ROUTE_KEYS, ("pool",))
    r = model.Route(
        pool=v.ident(data["pool"], f"{path}.pool"),
        host=v.optional(data, "host", path, v.host_pattern, None),
        path=v.optional(data, "path", path, v.url_path, None),
    )
    if r.host is None and r.path is None:
        raise v.fail(path, "needs a host, a path or both")
    return r
