"""Inventories: YAML (or JSON) files of listeners, pools and members → ``Desired``.

The format is documented in docs/inventory.md.  Errors name the file, the path
inside it and the reason, on one line; unknown keys are errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from lbctl import model
from lbctl import validate as v
from lbctl.errors import ConfigError

TOP_KEYS = ("version", "defaults", "listeners", "pools")
DEFAULT_KEYS = ("pool", "listener")
POOL_KEYS = ("balance", "health", "connect_timeout", "server_timeout", "sticky_cookie", "maxconn", "members")
HEALTH_KEYS = ("type", "path", "host", "expect_status", "interval", "rise", "fall")
MEMBER_KEYS = ("name", "address", "port", "weight", "state", "tags", "meta")
LISTENER_KEYS = ("address", "port", "mode", "default_pool", "routes", "tls", "client_timeout")
ROUTE_KEYS = ("host", "path", "pool")
TLS_KEYS = ("cert", "key")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path: str | Path) -> model.Desired:
    """Read, validate and canonicalize one inventory file.

    :raises ConfigError: unreadable file, bad YAML, or any invalid value.
    """
    path = Path(path)
    raw = read(path)
    try:
        return from_raw(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def read(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read inventory: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {reason}") from None


def from_raw(raw: Any) -> model.Desired:
    """Build the model from parsed inventory data (paths in errors are relative to it)."""
    if raw is None:
        raw = {}
    data = v.fields(raw, "", TOP_KEYS)
    if data.get("version", 1) != 1:
        raise v.fail("version", "must be 1", data.get("version"))
    defaults = v.fields(data.get("defaults") or {}, "defaults", DEFAULT_KEYS)
    pool_defaults = v.fields(defaults.get("pool") or {}, "defaults.pool", POOL_KEYS[:-1])
    listener_defaults = v.fields(defaults.get("listener") or {}, "defaults.listener", ("address", "client_timeout"))
    pools = v.named(data.get("pools") or {}, "pools", lambda n, b, p: pool(n, b, p, pool_defaults))
    listeners = v.named(data.get("listeners") or {}, "listeners",
                        lambda n, b, p: listener(n, b, p, listener_defaults))
    return v.canonical(listeners, pools)


def pool(name: str, raw: Any, path: str, defaults: Mapping) -> model.Pool:
    body = v.fields(raw if raw is not None else {}, path, POOL_KEYS)
    merged = {**defaults, **body}
    health = {**(v.mapping(defaults.get("health") or {}, "defaults.pool.health")),
              **(v.mapping(body.get("health") or {}, f"{path}.health"))}
    base = model.Pool(name)
    return model.Pool(
        name=name,
        members=members(merged.get("members") or [], f"{path}.members"),
        balance=v.optional(merged, "balance", path, v.choice, base.balance, model.BALANCE),
        health=health_check(health, f"{path}.health"),
        connect_timeout_ms=v.optional(merged, "connect_timeout", path, v.duration_ms, base.connect_timeout_ms),
        server_timeout_ms=v.optional(merged, "server_timeout", path, v.duration_ms, base.server_timeout_ms),
        sticky_cookie=v.optional(merged, "sticky_cookie", path, v.pattern, None, v.COOKIE,
                                 "a cookie name of letters, digits and '_'"),
        maxconn=v.optional(merged, "maxconn", path, v.integer, None, 1, 1_000_000),
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
    out: dict[str, model.Member] = {}
    endpoints: dict[tuple[str, int], str] = {}
    for i, item in enumerate(v.sequence(raw, path)):
        where = f"{path}[{i}]"
        m = member(item, where)
        if m.name in out:
            raise v.fail(f"{where}.name", f"duplicate member name {m.name!r}")
        if (m.address, m.port) in endpoints:
            raise v.fail(where, f"{m.address}:{m.port} is already member {endpoints[m.address, m.port]!r}")
        out[m.name] = m
        endpoints[m.address, m.port] = m.name
    return tuple(out[name] for name in sorted(out))


def member(raw: Any, path: str) -> model.Member:
    data = v.fields(raw, path, MEMBER_KEYS, ("address", "port"))
    addr = v.address(data["address"], f"{path}.address")
    port = v.port(data["port"], f"{path}.port")
    name = data.get("name")
    return model.Member(
        name=v.derived_name(addr, port) if name is None else v.ident(name, f"{path}.name"),
        address=addr,
        port=port,
        weight=v.optional(data, "weight", path, v.integer, 1, model.WEIGHT_MIN, model.WEIGHT_MAX),
        state=v.optional(data, "state", path, v.choice, "enabled", model.MEMBER_STATES),
        tags=v.optional(data, "tags", path, v.tags, ()),
        meta=v.optional(data, "meta", path, v.meta, ()),
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
    if default_pool is None and not routes:
        raise v.fail(path, "needs a default_pool or routes")
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
    )


def route(raw: Any, path: str) -> model.Route:
    data = v.fields(raw, path, ROUTE_KEYS, ("pool",))
    r = model.Route(
        pool=v.ident(data["pool"], f"{path}.pool"),
        host=v.optional(data, "host", path, v.hostname, None),
        path=v.optional(data, "path", path, v.url_path, None),
    )
    if r.host is None and r.path is None:
        raise v.fail(path, "needs a host, a path or both")
    return r
