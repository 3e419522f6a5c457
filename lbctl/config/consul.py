"""Settings of the Consul source (``source.consul``) and of the leader election
(``election``) in lbctl.yml.  Documented in docs/consul.md and docs/ha.md.

Every default is a field default here.  The ACL token is read from an environment
variable or a file when the client is made (lbctl.config.secrets), and is never
stored in these settings, logged or shown.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbctl.config import secrets
from lbctl.config import values as val
from lbctl.validate import TAG

CONSUL_KEYS = ("address", "scheme", "token_env", "token_file", "tls", "datacenter", "services", "tag",
               "filter", "health", "stale", "wait", "min_query_interval", "max_connections")
TLS_KEYS = ("ca", "cert", "key", "verify")
ELECTION_KEYS = ("key", "ttl", "lock_delay", "name", "consul")
CONSUL_PORT = 8500  # of an address without one
# A Consul agent refuses a client's 201st connection (limits.http_max_conns_per_client, 200 by
# default): stay ten below it.  Three: the two watches and at least one reader.
MIN_CONNECTIONS, MAX_CONNECTIONS = 3, 190
KV_KEY = re.compile(r"[A-Za-z0-9_.,-]+(/[A-Za-z0-9_.,-]+)*", re.ASCII)


@dataclass(frozen=True)
class ConsulSettings:
    host: str = "127.0.0.1"
    port: int = CONSUL_PORT
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
    max_connections: int = 16  # HTTP connections to Consul at once: two feeds, hot services, readers

    where: str = "source.consul"  # the section in lbctl.yml, for errors

    def token(self) -> str | None:
        """:raises ConfigError: the variable or file is missing (the value is never shown)."""
        if self.token_file is None and self.token_env is None:
            return None
        return secrets.read(self.token_env, self.token_file, self.where, "token")


@dataclass(frozen=True)
class ElectionSettings:
    key: str = "lbctl/leader"
    ttl_s: int = 15  # Consul expires a session at up to twice its TTL
    lock_delay_s: int = 15  # 0: none
    name: str = "lbctl"  # the default is the host's short name
    consul: ConsulSettings | None = None  # default: source.consul


def election(raw: Any, base: Path, path: str = "election") -> ElectionSettings:
    data = val.section(raw or {}, path, ELECTION_KEYS)
    d = ElectionSettings()
    ttl = val.optional(data, "ttl", path, val.duration, d.ttl_s * 1000)
    if not 10_000 <= ttl <= 86_400_000:
        raise val.fail(f"{path}.ttl", "must be from 10s to 24h (Consul's limits)", data.get("ttl"))
    delay = val.optional(data, "lock_delay", path, val.duration, d.lock_delay_s * 1000, True)
    if delay > 60_000:
        raise val.fail(f"{path}.lock_delay", "must be at most 60s (Consul's cap)", data.get("lock_delay"))
    key = val.optional(data, "key", path, val.pattern, d.key, KV_KEY, "a Consul key of letters, digits and ._,-/")
    if "." in key.rsplit("/", 1)[-1]:
        raise val.fail(f"{path}.key", "must not end in an extension (Consul refuses keys like x.json)", key)
    name = val.optional(data, "name", path, val.ident, os.uname().nodename.split(".")[0] or d.name)
    return ElectionSettings(key, ttl // 1000, delay // 1000, name,
                            consul(data["consul"], base, f"{path}.consul", need_services=False)
                            if data.get("consul") else None)


def consul(raw: Any, base: Path, path: str = "source.consul", need_services: bool = True) -> ConsulSettings:
    data = val.section(raw or {}, path, CONSUL_KEYS)
    d = ConsulSettings()
    host, port = val.host_port(data.get("address", f"{d.host}:{d.port}"), f"{path}.address", CONSUL_PORT)
    tls = val.section(data.get("tls") or {}, f"{path}.tls", TLS_KEYS)
    health = val.optional(data, "health", path, val.choice, "passing", ("passing", "warning"))
    services = tuple(val.ident(s, f"{path}.services[{i}]")
                     for i, s in enumerate(val.sequence(data.get("services") or [], f"{path}.services")))
    token_env, token_file = secrets.where(data, "token", path, base, required=False)
    settings = ConsulSettings(
        host=host, port=port,
        scheme=val.optional(data, "scheme", path, val.choice, d.scheme, ("http", "https")),
        token_env=token_env, token_file=token_file,
        ca=val.file_in(base, tls, "ca", f"{path}.tls"), cert=val.file_in(base, tls, "cert", f"{path}.tls"),
        key=val.file_in(base, tls, "key", f"{path}.tls"),
        verify=val.optional(tls, "verify", f"{path}.tls", val.boolean, d.verify),
        datacenter=val.optional(data, "datacenter", path, val.ident, d.datacenter),
        services=services,
        tag=val.optional(data, "tag", path, val.pattern, d.tag, TAG, "a tag"),
        filter=val.optional(data, "filter", path, val.printable, d.filter),
        include_warning=health == "warning",
        stale=val.optional(data, "stale", path, val.boolean, d.stale),
        wait_ms=val.optional(data, "wait", path, val.duration, d.wait_ms),
        min_query_interval_ms=val.optional(data, "min_query_interval", path, val.duration, d.min_query_interval_ms),
        where=path,
        max_connections=val.optional(data, "max_connections", path, connections, d.max_connections),
    )
    if need_services and not (settings.services or settings.tag or settings.filter):
        raise val.fail(path, "needs services, a tag or a filter to choose what to watch")
    if settings.wait_ms > 600_000:
        raise val.fail(f"{path}.wait", "must be at most 10m (Consul clamps longer waits)")
    return settings


def connections(value: Any, path: str) -> int:
    if type(value) is int and MIN_CONNECTIONS <= value <= MAX_CONNECTIONS:
        return value
    raise val.fail(path, f"must be an integer from {MIN_CONNECTIONS} to {MAX_CONNECTIONS} (a Consul agent answers 429 "
                   "beyond 200 connections per client)", value)
