"""The settings of a ``kind: bigip`` target in lbctl.yml (docs/bigip.md).

Only where the password is (an environment variable or a file, lbctl.config.secrets)
is kept here, never the password itself.  Every default is a field default here.
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

SHARED = True  # a device many controllers see: with an election, only the leader writes to it
MODES = ("imperative", "as3")
KEYS = ("host", "port", "username", "password_env", "password_file", "verify",
        "ca_bundle", "partition", "mode", "timeout", "retries", "backoff", "owner", "drain_time",
        "save_config", "sync_group", "as3_tenant", "as3_timeout", "device_check", "devices", "sync_timeout")
# What AS3 accepts for a tenant, and BIG-IP for a partition or an owner in a description.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", re.ASCII)
USER = re.compile(r"[^\x00-\x20:]{1,128}")


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
    backoff_ms: int = 1_000  # 0: retry at once
    owner: str = "lbctl"
    drain_time_ms: int = 300_000  # 0: no draining
    save_config: bool = True
    sync_group: str | None = None
    sync_timeout_ms: int = 60_000  # after config-sync, how long cm/sync-status may take to say In Sync
    devices: tuple[tuple[str, int], ...] = ()  # a device group's devices: lbctl writes to the ACTIVE one
    as3_tenant: str = "lbctl"
    as3_timeout_ms: int = 120_000
    device_check: bool = False

    def password(self, path: str) -> str:
        """Read at each login, never stored.  :raises ConfigError: naming ``path``.password_*."""
        return secrets.read(self.password_env, self.password_file, path, "password")


def options(raw: Mapping[str, Any] | None = None, path: str = "options") -> BigIPSettings:
    """Every default (``lbctl render -t bigip`` without a config: tenant and owner ``lbctl``):
    a device's settings come from a config only.  :raises ConfigError: ``raw`` sets some."""
    if raw:
        raise val.fail(path, "a bigip target's settings come from a config")
    return BigIPSettings()


def name(value: Any, path: str) -> str:
    return val.pattern(value, path, NAME, "a name of letters, digits, '_', '.' or '-' starting with a letter "
                         "(at most 64)")


def parse(data: Mapping[str, Any], path: str, base: Path) -> BigIPSettings:
    """The bigip keys of a target's mapping (the loader refused unknown keys).

    :raises ConfigError: a missing or bad value, naming its key path.
    """
    for key in ("host", "username"):
        if data.get(key) is None and not (key == "host" and data.get("devices")):
            raise val.fail(val.join(path, key), "is required" + (" (or devices)" if key == "host" else ""))
    if data.get("host") is not None and data.get("devices") is not None:
        raise val.fail(path, "takes host or devices, not both")
    password_env, password_file = secrets.where(data, "password", path, base, required=True)
    d = BigIPSettings()
    port = val.optional(data, "port", path, val.port, d.port)
    devices = tuple(val.host_port(x, f"{path}.devices[{i}]", port)
                    for i, x in enumerate(val.sequence(data.get("devices") or [], f"{path}.devices")))
    if data.get("devices") is not None and len(set(devices)) < 2:
        raise val.fail(f"{path}.devices", "must list at least two different devices (one: use host)")
    return BigIPSettings(
        host=val.address(data["host"], val.join(path, "host")) if devices == () else devices[0][0],
        port=port if devices == () else devices[0][1],
        devices=devices,
        sync_timeout_ms=val.optional(data, "sync_timeout", path, val.duration, d.sync_timeout_ms),
        username=val.pattern(data["username"], val.join(path, "username"), USER, "a user name"),
        password_env=password_env,
        password_file=password_file,
        verify=val.optional(data, "verify", path, val.boolean, d.verify),
        ca_bundle=val.file_in(base, data, "ca_bundle", path),
        partition=val.optional(data, "partition", path, name, d.partition),
        mode=val.optional(data, "mode", path, val.choice, d.mode, MODES),
        timeout_ms=val.optional(data, "timeout", path, val.duration, d.timeout_ms),
        retries=val.optional(data, "retries", path, val.integer, d.retries, 0, 20),
        backoff_ms=val.optional(data, "backoff", path, val.duration, d.backoff_ms, True),
        owner=val.optional(data, "owner", path, name, d.owner),
        drain_time_ms=val.optional(data, "drain_time", path, val.duration, d.drain_time_ms, True),
        save_config=val.optional(data, "save_config", path, val.boolean, d.save_config),
        sync_group=val.optional(data, "sync_group", path, name, d.sync_group),
        as3_tenant=val.optional(data, "as3_tenant", path, name, d.as3_tenant),
        as3_timeout_ms=val.optional(data, "as3_timeout", path, val.duration, d.as3_timeout_ms),
        device_check=val.optional(data, "device_check", path, val.boolean, d.device_check),
    )
