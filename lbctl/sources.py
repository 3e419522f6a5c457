"""Settings for the Consul source and for ``lbctl watch``, from lbctl.yml.

Documented in docs/consul.md.  Every default lives here.  The ACL token is
read from an environment variable or a file when the client is made
(``redact.read``), and is never stored in these settings, logged or shown.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbctl import redact, validate as v

CONSUL_KEYS = ("address", "scheme", "token_env", "token_file", "tls", "datacenter", "services", "tag",
               "filter", "health", "stale", "wait", "min_query_interval", "max_connections")
TLS_KEYS = ("ca", "cert", "key", "verify")
WATCH_KEYS = ("min_wait", "max_wait", "retry_max")
ELECTION_KEYS = ("key", "ttl", "lock_delay", "name", "consul")
# A Consul agent refuses a client's 201st connection (limits.http_max_conns_per_client, 200 by
# default): stay ten below it.  Three: the two watches and at least one reader.
MIN_CONNECTIONS, MAX_CONNECTIONS = 3, 190
KV_KEY = re.compile(r"[A-Za-z0-9_.,-]+(/[A-Za-z0-9_.,-]+)*", re.ASCII)


@dataclass(frozen=True)
class ConsulSettings:
    host: str = "127.0.0.1"
    port: int = 8500
    scheme: str = "http"
    token_env: str | None = None
    token_file: Path | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verify: bool = True
    datacenter: str | None = None
    services: tuple[str, ...] = ()
    tag: str | None = None
    filter: str | None = None
    include_warning: bool = False
    stale: bool = False
    wait_ms: int = 60_000  # how long one blocking query may wait
    min_query_interval_ms: int = 100  # per watched query, after a burst of two
    max_connections: int = 16  # HTTP connections to Consul at once: two watches, the rest re-read services

    where: str = "source.consul"  # the section in lbctl.yml, for errors

    def token(self) -> str | None:
        """:raises ConfigError: the variable or file is missing (the value is never shown)."""
        if self.token_file is None and self.token_env is None:
            return None
        return redact.read(self.token_env, self.token_file, self.where, "token")


@dataclass(frozen=True)
class WatchSettings:
    min_wait_ms: int = 0  # quiescence: wait this long after a change for more changes ...
    max_wait_ms: int = 5_000  # ... but never longer than this after the first one
    retry_max_ms: int = 30_000  # backoff cap when applying or reading Consul fails


@dataclass(frozen=True)
class ElectionSettings:
    key: str = "lbctl/leader"
    ttl_s: int = 15  # Consul expires a session at up to twice its TTL
    lock_delay_s: int = 15
    name: str = "lbctl"
    consul: ConsulSettings | None = None  # default: source.consul


def election(raw: Any, base: Path, path: str = "election") -> ElectionSettings:
    data = v.fields(raw or {}, path, ELECTION_KEYS)
    ttl = v.optional(data, "ttl", path, v.duration_ms, 15_000)
    if not 10_000 <= ttl <= 86_400_000:
        raise v.fail(f"{path}.ttl", "must be from 10s to 24h (Consul's limits)", data.get("ttl"))
    delay = v.optional(data, "lock_delay", path, duration_or_zero, 15_000)
    if delay > 60_000:
        raise v.fail(f"{path}.lock_delay", "must be at most 60s (Consul's cap)", data.get("lock_delay"))
    key = v.optional(data, "key", path, v.pattern, "lbctl/leader", KV_KEY, "a Consul key of letters, digits and ._,-/")
    if "." in key.rsplit("/", 1)[-1]:
        raise v.fail(f"{path}.key", "must not end in an extension (Consul refuses keys like x.json)", key)
    name = v.optional(data, "name", path, v.ident, os.uname().nodename.split(".")[0] or "lbctl")
    settings = ElectionSettings(key, ttl // 1000, delay // 1000, name,
                                consul(data["consul"], base, f"{path}.consul", need_services=False)
                                if data.get("consul") else None)
    return settings


def consul(raw: Any, base: Path, path: str = "source.consul", need_services: bool = True) -> ConsulSettings:
    data = v.fields(raw or {}, path, CONSUL_KEYS)
    host, port = address(data.get("address", "127.0.0.1:8500"), f"{path}.address")
    tls = v.fields(data.get("tls") or {}, f"{path}.tls", TLS_KEYS)
    health = v.optional(data, "health", path, v.choice, "passing", ("passing", "warning"))
    services = tuple(v.ident(s, f"{path}.services[{i}]") for i, s in enumerate(v.sequence(data.get("services") or [], f"{path}.services")))
    settings = ConsulSettings(
        host=host, port=port,
        scheme=v.optional(data, "scheme", path, v.choice, "http", ("http", "https")),
        token_env=v.optional(data, "token_env", path, v.pattern, None, ENV, "an environment variable name"),
        token_file=file_path(base, data, "token_file", path),
        ca=file_path(base, tls, "ca", f"{path}.tls"), cert=file_path(base, tls, "cert", f"{path}.tls"),
        key=file_path(base, tls, "key", f"{path}.tls"),
        verify=v.optional(tls, "verify", f"{path}.tls", boolean, True),
        datacenter=v.optional(data, "datacenter", path, v.ident, None),
        services=services,
        tag=v.optional(data, "tag", path, v.pattern, None, v.TAG, "a tag"),
        filter=v.optional(data, "filter", path, printable, None),
        include_warning=health == "warning",
        stale=v.optional(data, "stale", path, boolean, False),
        wait_ms=v.optional(data, "wait", path, v.duration_ms, 60_000),
        min_query_interval_ms=v.optional(data, "min_query_interval", path, v.duration_ms, 100),
        where=path,
        max_connections=v.optional(data, "max_connections", path, connections, ConsulSettings.max_connections),
    )
    if need_services and not (settings.services or settings.tag or settings.filter):
        raise v.fail(path, "needs services, a tag or a filter to choose what to watch")
    if settings.wait_ms > 600_000:
        raise v.fail(f"{path}.wait", "must be at most 10m (Consul clamps longer waits)")
    return settings


def watch(raw: Any, path: str = "watch") -> WatchSettings:
    for moved in ("max_removal", "min_members"):
        if isinstance(raw, dict) and moved in raw:
            raise v.fail(f"{path}.{moved}", f"moved to guard.{moved} (the removal guard covers every command now)")
    data = v.fields(raw or {}, path, WATCH_KEYS)
    base = WatchSettings()
    settings = WatchSettings(
        min_wait_ms=v.optional(data, "min_wait", path, duration_or_zero, base.min_wait_ms),
        max_wait_ms=v.optional(data, "max_wait", path, v.duration_ms, base.max_wait_ms),
        retry_max_ms=v.optional(data, "retry_max", path, v.duration_ms, base.retry_max_ms),
    )
    if settings.min_wait_ms > settings.max_wait_ms:
        raise v.fail(f"{path}.min_wait", "must not be longer than max_wait")
    return settings


PATHLIKE = re.compile(r"[^\x00-\x1f\x7f]{1,1024}")
ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)


def address(value: Any, path: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``), or a bare host on port 8500."""
    if not isinstance(value, str):
        raise v.fail(path, "must be host:port", value)
    host, sep, port = value.rpartition(":") if not value.endswith("]") else (value, "", "")
    if not sep or (":" in host and not host.startswith("[")):
        host, port = value, "8500"
    host = host.strip("[]")
    if not port.isdigit():
        raise v.fail(path, "must be host:port", value)
    return v.address(host, path), v.port(int(port), path)


def file_path(base: Path, data: dict, key: str, path: str) -> Path | None:
    """An optional file named in lbctl.yml, relative to its directory."""
    if not data.get(key):
        return None
    return base / v.pattern(data[key], f"{path}.{key}", PATHLIKE, "a file path")


def boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise v.fail(path, "must be true or false", value)


def connections(value: Any, path: str) -> int:
    if type(value) is int and MIN_CONNECTIONS <= value <= MAX_CONNECTIONS:
        return value
    raise v.fail(path, f"must be an integer from {MIN_CONNECTIONS} to {MAX_CONNECTIONS} (a Consul agent answers 429 "
                       "beyond 200 connections per client)", value)


def printable(value: Any, path: str) -> str:
    if isinstance(value, str) and value.isprintable() and len(value) <= 4096:
        return value
    raise v.fail(path, "must be printable text", value)


def duration_or_zero(value: Any, path: str) -> int:
    return 0 if value in (0, "0", "0s", "0ms") else v.duration_ms(value, path)
