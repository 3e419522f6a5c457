"""Turn untrusted raw data (an inventory, discovery answers) into model objects.

Every value is checked against a narrow, documented form before it can reach a
template: identifiers in a safe character set, IP addresses or RFC 1123 host
names, ports 1-65535, weights within what every target accepts.  Nothing that
passes can carry a newline, a quote, a brace, a semicolon or white space, so no
value can end a directive or start a new one.  A failure raises ``ConfigError``
naming the path of the offending value (``pools.web.members[3].port``).  Pure:
no I/O.
"""

from __future__ import annotations

import ipaddress
import re
import _socket  # socket.py's C core: inet_pton without socket.py's import (enums, selectors)
from operator import attrgetter
from typing import Any, Callable, Iterable, Mapping

from lbctl import model
from lbctl.errors import ConfigError

IDENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME = re.compile(rf"{HOST_LABEL}(?:\.{HOST_LABEL})*", re.ASCII)
# A route's path prefix from discovery: segments of unreserved characters (RFC 3986),
# no empty, "." or ".." segment (nginx matches the normalised path, HAProxy the raw one).
ROUTE_PATH = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*[A-Za-z0-9._~-]*", re.ASCII)
URL_PATH = re.compile(r"/[A-Za-z0-9._~/:@+=,-]{0,255}", re.ASCII)
FILE_PATH = re.compile(r"/[A-Za-z0-9._/-]{1,1023}", re.ASCII)
COOKIE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}", re.ASCII)
TAG = re.compile(r"[\w.:=/@+,-]{1,255}", re.ASCII)
META_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}", re.ASCII)
# Printable ASCII but " # $ ' ; \ ` { }, spelled as what is allowed: the same set
# written as a negated class up to U+10FFFF took milliseconds to compile.
META_VALUE = re.compile(r"[\x20\x21\x25\x26\x28-\x3a\x3c-\x5b\x5d-\x5f\x61-\x7a\x7c\x7e]{0,512}")
DURATION = re.compile(r"(\d{1,9})(ms|s|m|h)?", re.ASCII)
UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, None: 1000}
MAX_DURATION_MS = 86_400_000


def show(value: Any) -> str:
    """A value as it may appear in a one-line error: escaped, and short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(path: str, reason: str, value: Any = None) -> ConfigError:
    got = "" if value is None else f" (got {show(value)})"
    return ConfigError(f"{path}: {reason}{got}")


# -- scalar fields ---------------------------------------------------------------

def ident(value: Any, path: str) -> str:
    if isinstance(value, str) and IDENT.fullmatch(value):
        return value
    raise fail(path, "must be a name of letters, digits, '_', '.' or '-' (at most 128)", value)


def integer(value: Any, path: str, low: int, high: int) -> int:
    if type(value) is int and low <= value <= high:
        return value
    raise fail(path, f"must be an integer from {low} to {high}", value)


def port(value: Any, path: str) -> int:
    return integer(value, path, 1, 65535)


def choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    raise fail(path, f"must be one of {', '.join(choices)}", value)


def hostname(value: Any, path: str) -> str:
    """An RFC 1123 host name, lower-cased, without a trailing dot."""
    if isinstance(value, str) and len(value) <= 253:
        name = value.lower()
        if HOSTNAME.fullmatch(name) and not name.rsplit(".", 1)[-1].isdigit():
            return name
    raise fail(path, "must be an RFC 1123 host name", value)


def host_pattern(value: Any, path: str) -> str:
    """A host name, or ``*.`` and a host name: one or more labels in front of it."""
    if isinstance(value, str) and value.startswith("*."):
        try:
            return "*." + hostname(value[2:], path)
        except ConfigError:
            pass
    elif isinstance(value, str) and "*" not in value:
        return hostname(value, path)
    raise fail(path, "must be an RFC 1123 host name, or '*.' and one", value)


def host_patterns(raw: Any, path: str) -> tuple[str, ...]:
    """A listener's ``accept_routes``: the host patterns services may claim routes
    under (docs/inventory.md#accept_routes), sorted, without repeats."""
    patterns = {host_pattern(p, f"{path}[{i}]") for i, p in enumerate(sequence(raw if raw is not None else [], path))}
    return tuple(sorted(patterns))


def route_path(value: Any, path: str) -> str:
    """A path prefix a service declares: '/' and segments of letters, digits and ._~-."""
    if isinstance(value, str) and len(value) <= 256 and ROUTE_PATH.fullmatch(value):
        if not {".", ".."} & set(value.split("/")):
            return value
    raise fail(path, "must be a path prefix: '/' and segments of letters, digits and ._~- (no '.' or '..')", value)


def is_ipv4(text: str) -> bool:
    """Strict dotted quad (no leading zeros, no white space), at C speed."""
    try:
        _socket.inet_pton(_socket.AF_INET, text)
        return True
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return False


def ip(value: Any, path: str) -> str:
    """An IPv4 or IPv6 address, in canonical form."""
    if isinstance(value, str):
        if is_ipv4(value):
            return value
        if ":" in value and "%" not in value:
            try:
                return ipaddress.IPv6Address(value).compressed
            except ValueError:
                pass
    raise fail(path, "must be an IPv4 or IPv6 address", value)


def address(value: Any, path: str) -> str:
    """An IP address or a host name."""
    if isinstance(value, str) and is_ipv4(value):
        return value  # the hot path: 100,000 members
    try:
        return ip(value, path)
    except ConfigError:
        pass
    try:
        return hostname(value, path)
    except ConfigError:
        raise fail(path, "must be an IPv4 or IPv6 address or an RFC 1123 host name", value) from None


def duration_ms(value: Any, path: str) -> int:
    """``250ms``, ``2s``, ``1m``, ``1h`` or a bare number of seconds, as milliseconds."""
    text = str(value) if type(value) is int else value
    match = DURATION.fullmatch(text) if isinstance(text, str) else None
    if match:
        ms = int(match.group(1)) * UNITS_MS[match.group(2)]
        if 1 <= ms <= MAX_DURATION_MS:
            return ms
    raise fail(path, "must be a duration such as 500ms, 2s, 1m (at most 24h)", value)


def pattern(value: Any, path: str, regex: re.Pattern, what: str) -> str:
    if isinstance(value, str) and regex.fullmatch(value):
        return value
    raise fail(path, f"must be {what}", value)


def url_path(value: Any, path: str) -> str:
    return pattern(value, path, URL_PATH, "a URL path starting with '/' (letters, digits, ._~/:@+=,-)")


def file_path(value: Any, path: str) -> str:
    text = pattern(value, path, FILE_PATH, "an absolute file path (letters, digits, ._/-)")
    if "/../" in text + "/":
        raise fail(path, "must not contain '..'", value)
    return text


def tags(value: Any, path: str) -> tuple[str, ...]:
    items = sequence(value, path)
    out = {pattern(t, f"{path}[{i}]", TAG, "a tag of letters, digits and ._:=/@+,-") for i, t in enumerate(items)}
    return tuple(sorted(out))


def meta(value: Any, path: str) -> tuple[tuple[str, str], ...]:
    items = mapping(value, path)
    out = []
    for key, val in items.items():
        key = pattern(key, f"{path} key", META_KEY, "a meta key of letters, digits, '_' or '-'")
        out.append((key, pattern(val, f"{path}.{key}", META_VALUE, "printable text without quotes, \\, `, {, }, ;, # or $")))
    return tuple(sorted(out))


# -- structure -------------------------------------------------------------------

def mapping(value: Any, path: str) -> Mapping:
    if isinstance(value, dict):  # what YAML, JSON and discovery clients produce
        return value
    raise fail(path, "must be a mapping", value)


def sequence(value: Any, path: str) -> list:
    if isinstance(value, list):
        return value
    raise fail(path, "must be a list", value)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def fields(raw: Any, path: str, allowed: tuple[str, ...], needed: tuple[str, ...] = ()) -> Mapping:
    """``raw`` as a mapping with only ``allowed`` keys and every ``required`` one."""
    data = mapping(raw, path or "inventory")
    keys = _allowed.get(allowed)
    if keys is None:
        keys = _allowed[allowed] = frozenset(allowed)
    if not data.keys() <= keys:
        key = next(k for k in data if k not in allowed)
        raise fail(path or "inventory", f"unknown key {show(key)}; allowed: {', '.join(allowed)}")
    for key in needed:
        if key not in data:
            required(join(path, key))
    return data


_allowed: dict[tuple, frozenset] = {}  # ``fields``' allowed keys as a set, made once per tuple


def required(path: str) -> Any:
    raise fail(path, "is required")


def optional(data: Mapping, key: str, path: str, check: Callable, default: Any, *args) -> Any:
    value = data.get(key)
    return default if value is None else check(value, join(path, key), *args)


def named(raw: Any, path: str, build: Callable[[str, Any, str], Any]) -> tuple:
    """A mapping of name → body, built into objects sorted by name."""
    items = mapping(raw, path)
    return tuple(build(name if type(name) is str and IDENT.fullmatch(name) else ident(name, f"{path}[{show(name)}]"),
                       body, f"{path}.{name}")
                 for name, body in sorted(items.items(), key=lambda kv: str(kv[0])))


def derived_name(addr: str, port_: int) -> str:
    """A member name made from its endpoint, for members that have none."""
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', addr)[:100]}_{port_}"


def canonical(listeners: tuple[model.Listener, ...], pools: tuple[model.Pool, ...], where: str = "") -> model.Desired:
    """Cross-check listeners against pools and return the sorted ``Desired``."""
    prefix = f"{where}: " if where else ""
    by_name = attrgetter("name")  # in C: a watch round sorts 10,000 pools
    names = set(map(by_name, pools))
    desired = model.Desired(tuple(sorted(listeners, key=by_name)), tuple(sorted(pools, key=by_name)))
    used_in: dict[str, str] = {}
    binds: dict[int, list[tuple[str, str]]] = {}
    for lst in desired.listeners:
        path = f"listeners.{lst.name}"
        for i, route in enumerate(lst.routes):
            if route.pool not in names:
                raise ConfigError(f"{prefix}{path}.routes[{i}].pool: no pool named {show(route.pool)}")
        if lst.default_pool is not None and lst.default_pool not in names:
            raise ConfigError(f"{prefix}{path}.default_pool: no pool named {show(lst.default_pool)}")
        for pool in model.listener_pools(lst):
            other = used_in.setdefault(pool, lst.mode)
            if other != lst.mode:
                raise ConfigError(f"{prefix}{path}: pool {pool!r} is used by both http and tcp listeners")
        for other_addr, other_name in binds.get(lst.port, []):
            if "0.0.0.0" in (other_addr, lst.address) or "::" in (other_addr, lst.address) or other_addr == lst.address:
                raise ConfigError(f"{prefix}{path}: {lst.address}:{lst.port} clashes with listeners.{other_name}")
        binds.setdefault(lst.port, []).append((lst.address, lst.name))
    fits(desired.pools, used_in, prefix)
    return desired


def fits(pools: Iterable[model.Pool], used_in: Mapping[str, str], prefix: str = "") -> None:
    """Each pool's settings against the mode of the listeners that use it (``used_in``)."""
    for pool in pools:
        if pool.sticky_cookie and used_in.get(pool.name) == "tcp":
            raise ConfigError(f"{prefix}pools.{pool.name}.sticky_cookie: needs http mode, but a tcp listener uses the pool")


# -- what a pool publishes in DNS (the dns kind: docs/dns.md) ------------------------------
# A relative name: host-name labels (RFC 1123), at most 200 characters so the zone fits
# in the 255 of a full name; "@" is the zone's apex.  SRV's service name: RFC 6335 5.1.
DNS_RELATIVE = re.compile(rf"{HOST_LABEL}(?:\.{HOST_LABEL})*", re.ASCII)
SERVICE_NAME = re.compile(r"(?=.{1,15}$)(?=[a-z0-9-]*[a-z])[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
DNS_KEYS = ("name", "types", "port_name")


def dns_name(raw: Any, path: str) -> model.DnsName:
    """A pool's ``dns`` mapping (``{name: www, types: [A, AAAA, SRV], port_name: http}``);
    ``types`` may also be one comma-separated string (a Consul Meta value)."""
    data = fields(raw, path, DNS_KEYS, ("name",))
    name = data["name"]
    if not (isinstance(name, str) and (name == "@" or len(name) <= 200 and DNS_RELATIVE.fullmatch(name.lower()))):
        raise fail(f"{path}.name", "must be a name relative to the zone, of host-name labels "
                   "(letters, digits, '-'; dots between), or @ for the apex", name)
    types = data.get("types", list(model.DnsName("").types))
    if isinstance(types, str):
        types = [t.strip() for t in types.split(",")]
    types = [choice(t, f"{path}.types", model.DNS_TYPES) for t in sequence(types, f"{path}.types")]
    if not types or len(set(types)) != len(types):
        raise fail(f"{path}.types", "must name each record type once, at least one", data.get("types"))
    if "CNAME" in types and len(types) > 1:
        raise fail(f"{path}.types", "CNAME stands alone: a name with a CNAME has no other records (RFC 1034 3.6.2)",
                   data.get("types"))
    if "CNAME" in types and name == "@":
        raise fail(f"{path}.types", "the zone's apex cannot be a CNAME (it holds the SOA and NS records)", "CNAME")
    port_name = optional(data, "port_name", path, pattern, None, SERVICE_NAME,
                         "a service name of 1-15 lower-case letters, digits and single '-' (RFC 6335)")
    if "SRV" in types and port_name is None:
        raise fail(f"{path}.port_name", "is required for SRV records (they are named _<port_name>._tcp.<name>)")
    return model.DnsName(name.lower(), tuple(sorted(types, key=model.DNS_TYPES.index)), port_name)
