"""The settings of a ``kind: haproxy`` target in lbctl.yml (docs/configuration.md).

``parse`` turns the target's mapping into ``HAProxySettings``: the render options
(the global and defaults sections of haproxy.cfg, docs/upstream.md#haproxy-globals)
and how lbctl reaches the process.  Every default is a field default here.
Pure and self-contained (only lbctl.config.values): the config loader reads it through
lbctl.kinds without loading the target's control code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from lbctl.config import values as val

SHARED = False  # with an election, every controller writes its own file
# HAProxy: sun_path's 108 bytes, less room for the temporary name it binds first.
SOCKET_MAX = 97


@dataclass(frozen=True)
class HAProxyOptions:
    """Rendered into haproxy.cfg.  Durations are in milliseconds (given as ``120s``)."""

    stats_socket: str = "/run/haproxy/admin.sock"
    state_file: str = "/var/lib/haproxy/server-state"
    maxconn: int = 4096
    hard_stop_after_ms: int = 120_000
    mworker_max_reloads: int = 5
    http_keep_alive_ms: int = 10_000
    # A map file (``drain 1`` or empty) every HTTP response checks: while it holds ``drain``,
    # the answer says ``Connection: close`` (lbctl drain-node, docs/high-availability.md)
    drain_map: str | None = None


@dataclass(frozen=True)
class HAProxySettings:
    options: HAProxyOptions = field(default_factory=HAProxyOptions)
    master_socket: Path = Path("/run/haproxy-master.sock")
    master_log: Path | None = None  # where the master's stderr goes: reload failures quote it
    runtime_api: bool = True  # member changes through the stats socket, without a reload
    slots: int = 0  # spare server slots per backend (0: servers named after members, added and deleted at runtime)
    write_delay_ms: int = 1000  # lbctl watch: how long the file may lag a runtime API change (writes coalesce)


PATH_OPTIONS = ("stats_socket", "state_file", "drain_map")  # relative to lbctl.yml
OPTION_KEYS = tuple(f.name.removesuffix("_ms") for f in fields(HAProxyOptions))
KEYS = ("master_socket", "master_log", "runtime_api", "slots", "write_delay") + OPTION_KEYS
CHECKS = {"stats_socket": (val.rendered_path,), "state_file": (val.rendered_path,), "drain_map": (val.rendered_path,),
          "maxconn": (val.integer, 1, 10_000_000), "mworker_max_reloads": (val.integer, 1, 1000)}


def options(raw: Mapping[str, Any] | None = None, path: str = "options") -> HAProxyOptions:
    """Validated render options from a mapping of overrides.  :raises ConfigError: naming the key."""
    return val.overrides(HAProxyOptions, CHECKS, raw, path)


def parse(data: Mapping[str, Any], path: str, base: Path) -> HAProxySettings:
    """The haproxy keys of a target's mapping (the loader refused unknown keys).

    :raises ConfigError: a bad value, naming its key path.
    """
    d = HAProxySettings()
    raw = {k: val.resolve_text(base, data[k]) if k in PATH_OPTIONS else data[k] for k in OPTION_KEYS if k in data}
    settings = HAProxySettings(
        options=options(raw, path),
        master_socket=val.resolve(base, val.optional(data, "master_socket", path, val.local_path,
                                                     str(d.master_socket))),
        master_log=val.file_in(base, data, "master_log", path),
        runtime_api=val.optional(data, "runtime_api", path, val.boolean, d.runtime_api),
        slots=val.optional(data, "slots", path, val.integer, d.slots, 0, 10_000),
        write_delay_ms=val.optional(data, "write_delay", path, val.duration, d.write_delay_ms),
    )
    for key, sock in (("master_socket", str(settings.master_socket)), ("stats_socket", settings.options.stats_socket)):
        if len(sock.encode()) > SOCKET_MAX:  # HAProxy would say so only when it starts (docs/running.md)
            raise val.fail(f"{path}.{key}", f"is longer than the {SOCKET_MAX} bytes HAProxy accepts for "
                           "a UNIX socket path; use a shorter directory", sock)
    return settings
