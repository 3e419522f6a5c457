"""The settings of a ``kind: dns`` target in lbctl.yml (docs/dns.md).

Only where the TSIG secret is (an environment variable or a file, lbctl.config.secrets)
is kept here, never the secret itself.  Every default is a field default here.
Pure and self-contained (only lbctl.config.values and .secrets): the config loader reads
it through lbctl.kinds without loading the target's control code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lbctl.config import secrets
from lbctl.config import values as val

SHARED = True  # a zone many controllers see: with an election, only the leader writes to it
KEYS = ("server", "port", "zone", "key_name", "key_algorithm", "key_secret_env", "key_secret_file", "ttl",
        "owner", "timeout", "retries", "backoff")
# The TSIG algorithms dnspython and BIND/Knot share (RFC 8945 6: hmac-md5 is not offered).
ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", re.ASCII)  # the owner id, in the ownership TXT records
KEY_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63}){0,7}\.?", re.ASCII)
TTL_MAX_MS = 86_400_000


@dataclass(frozen=True)
class DnsSettings:
    server: str = ""                 # the zone's primary (the SOA MNAME), an IP address
    port: int = 53
    zone: str = ""                   # absolute, lower case, with its final dot
    key_name: str = ""
    key_algorithm: str = "hmac-sha256"
    key_secret_env: str | None = None
    key_secret_file: Path | None = None
    ttl_ms: int = 30_000             # every record lbctl writes
    owner: str = "lbctl"             # in each ownership TXT record (like external-dns's --txt-owner-id)
    timeout_ms: int = 5_000          # per query or UPDATE
    retries: int = 3                 # re-read, re-plan and resend after a concurrent writer won
    backoff_ms: int = 200            # before the first retry; doubles each time

    @property
    def ttl(self) -> int:
        return self.ttl_ms // 1000

    def secret(self, path: str) -> str:
        """The TSIG secret (base64), read at each use, never stored or shown.
        :raises ConfigError: naming ``path``.key_secret_*."""
        return secrets.read(self.key_secret_env, self.key_secret_file, path, "key_secret")


def options(raw: Mapping[str, Any] | None = None, path: str = "options") -> DnsSettings:
    """Every default (``lbctl render -t dns`` without a config, which then asks for one:
    records need a zone).  :raises ConfigError: ``raw`` sets some."""
    if raw:
        raise val.fail(path, "a dns target's settings come from a config")
    return DnsSettings()


def zone(value: Any, path: str) -> str:
    """A zone name: an RFC 1123 host name, with or without its final dot; absolute."""
    return val.v.hostname(value.removesuffix(".") if isinstance(value, str) else value, path) + "."


def ttl(value: Any, path: str) -> int:
    ms = val.duration(value, path)
    if ms % 1000 or ms > TTL_MAX_MS:
        raise val.fail(path, "must be whole seconds, at most 24h", value)
    return ms


def parse(data: Mapping[str, Any], path: str, base: Path) -> DnsSettings:
    """The dns keys of a target's mapping (the loader refused unknown keys).

    :raises ConfigError: a missing or bad value, naming its key path.
    """
    for key in ("server", "zone", "key_name"):
        if data.get(key) is None:
            raise val.fail(val.join(path, key), "is required")
    secret_env, secret_file = secrets.where(data, "key_secret", path, base, required=True)
    d = DnsSettings()
    return DnsSettings(
        server=val.v.ip(data["server"], val.join(path, "server")),
        port=val.optional(data, "port", path, val.port, d.port),
        zone=zone(data["zone"], val.join(path, "zone")),
        key_name=val.pattern(data["key_name"], val.join(path, "key_name"), KEY_NAME,
                             "a TSIG key name (labels of letters, digits, '_' or '-')").lower().rstrip(".") + ".",
        key_algorithm=val.optional(data, "key_algorithm", path, val.choice, d.key_algorithm, ALGORITHMS),
        key_secret_env=secret_env,
        key_secret_file=secret_file,
        ttl_ms=val.optional(data, "ttl", path, ttl, d.ttl_ms),
        owner=val.optional(data, "owner", path, val.pattern, d.owner, NAME,
                           "a name of letters, digits, '_', '.' or '-' starting with a letter (at most 64)"),
        timeout_ms=val.optional(data, "timeout", path, val.duration, d.timeout_ms),
        retries=val.optional(data, "retries", path, val.integer, d.retries, 0, 20),
        backoff_ms=val.optional(data, "backoff", path, val.duration, d.backoff_ms, True),
    )
