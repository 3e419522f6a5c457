"""The settings of a ``kind: bigip`` target in lbctl.yml (docs/bigip.md).

Only where the password is (an environment variable or a file) is kept here,
never the password itself.  Every default lives here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lbctl import validate as v

KIND = "bigip"
MODES = ("imperative", "as3")
KEYS = ("kind", "lock_timeout", "shared", "host", "port", "username", "password_env", "password_file", "verify",
        "ca_bundle", "partition", "mode", "timeout", "retries", "backoff", "owner", "drain_time",
        "save_config", "sync_group", "as3_tenant", "as3_timeout", "device_check")
# What AS3 accepts for a tenant, and BIG-IP for a partition or an owner in a description.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", re.ASCII)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)


@dataclass(frozen=True)
class BigIPSettings:
    host: str = ""
    port: int = 443
    username: str = "admin"
    password_env: str | None = None
    password_file: Path | None = None
    verify: bool = True
    ca_bundle: Path | None = None
    partition: str = "Common"
    mode: str = "imperative"
    timeout_ms: int = 30_000
    retries: int = 3
    backoff_ms: int = 1_000
    owner: str = "lbctl"
    drain_time_ms: int = 300_000
    save_config: bool = True
    sync_group: str | None = None
    as3_tenant: str = "lbctl"
    as3_timeout_ms: int = 120_000
    device_check: bool = False


def parse(data: Mapping[str, Any], path: str, base: Path) -> BigIPSettings:
    """:raises ConfigError: an unknown key or a bad value, naming it."""
    v.fields(data, path, KEYS)
    for key in ("host", "username"):
        if data.get(key) is None:
            raise v.fail(v.join(path, key), "is required")
    if ("password_env" in data) == ("password_file" in data):
        raise v.fail(path, "needs exactly one of password_env (an environment variable) or password_file")
    name = lambda value, where: v.pattern(value, where, NAME, "a name of letters, digits, '_', '.' or '-' "  # noqa: E731
                                          "starting with a letter (at most 64)")
    password_file = v.optional(data, "password_file", path, v.pattern, None, re.compile(r"[^\x00-\x1f]{1,1024}"),
                               "a file path")
    ca_bundle = v.optional(data, "ca_bundle", path, v.pattern, None, re.compile(r"[^\x00-\x1f]{1,1024}"),
                           "a file path")
    return BigIPSettings(
        host=v.address(data["host"], v.join(path, "host")),
        port=v.optional(data, "port", path, v.port, 443),
        username=v.pattern(data["username"], v.join(path, "username"), re.compile(r"[^\x00-\x20:]{1,128}"),
                           "a user name"),
        password_env=v.optional(data, "password_env", path, v.pattern, None, ENV_NAME,
                                "an environment variable name"),
        password_file=resolve(base, password_file) if password_file else None,
        verify=v.optional(data, "verify", path, boolean, True),
        ca_bundle=resolve(base, ca_bundle) if ca_bundle else None,
        partition=v.optional(data, "partition", path, name, "Common"),
        mode=v.optional(data, "mode", path, v.choice, "imperative", MODES),
        timeout_ms=v.optional(data, "timeout", path, v.duration_ms, 30_000),
        retries=v.optional(data, "retries", path, v.integer, 3, 0, 20),
        backoff_ms=v.optional(data, "backoff", path, duration_or_zero, 1_000),
        owner=v.optional(data, "owner", path, name, "lbctl"),
        drain_time_ms=v.optional(data, "drain_time", path, duration_or_zero, 300_000),
        save_config=v.optional(data, "save_config", path, boolean, True),
        sync_group=v.optional(data, "sync_group", path, name, None),
        as3_tenant=v.optional(data, "as3_tenant", path, name, "lbctl"),
        as3_timeout_ms=v.optional(data, "as3_timeout", path, v.duration_ms, 120_000),
        device_check=v.optional(data, "device_check", path, boolean, False),
    )


def boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise v.fail(path, "must be true or false", value)


def duration_or_zero(value: Any, path: str) -> int:
    """A duration (``300s``), or 0 for none."""
    if value == 0 or value == "0" or value == "0s":
        return 0
    return v.duration_ms(value, path)


def resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p
