"""The settings of a ``kind: nginx`` target in lbctl.yml (docs/configuration.md).

``parse`` turns the target's mapping into ``NginxSettings``: the render options (the
main context of nginx.conf) and ``main_config``, the operator's main file when lbctl
writes only a file it includes.  Every default is a field default here.
Pure and self-contained (only lbctl.config.values): the config loader reads it through
lbctl.kinds without loading the target's control code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from lbctl.config import values as val

SHARED = False
LAYOUTS = ("main", "include")


@dataclass(frozen=True)
class NginxOptions:
    """Rendered into nginx.conf.  ``layout``: ``main`` (a whole nginx.conf) or ``include``
    (only upstreams and servers, for a file included from ``http {}``): set by ``main_config``."""

    layout: str = "main"
    user: str | None = None  # the workers' user; the Debian build's default is nobody
    pid_file: str = "/run/nginx.pid"
    error_log: str = "/var/log/nginx/error.log"
    worker_processes: int = 2
    worker_connections: int = 1024
    worker_shutdown_timeout_ms: int = 120_000
    stream_module: str | None = "/usr/lib/nginx/modules/ngx_stream_module.so"
    temp_dir: str | None = None


@dataclass(frozen=True)
class NginxSettings:
    options: NginxOptions = field(default_factory=NginxOptions)
    main_config: Path | None = None


PATH_OPTIONS = ("pid_file", "error_log", "stream_module", "temp_dir")  # relative to lbctl.yml
OPTION_KEYS = tuple(f.name.removesuffix("_ms") for f in fields(NginxOptions) if f.name != "layout")
KEYS = ("main_config",) + OPTION_KEYS
CHECKS = {**{name: (val.rendered_path,) for name in PATH_OPTIONS},
          "worker_processes": (val.integer, 1, 1024), "worker_connections": (val.integer, 1, 1_000_000),
          "layout": (val.choice, LAYOUTS), "user": (val.ident,)}


def options(raw: Mapping[str, Any] | None = None, path: str = "options") -> NginxOptions:
    """Validated render options from a mapping of overrides.  :raises ConfigError: naming the key."""
    return val.overrides(NginxOptions, CHECKS, raw, path)


def parse(data: Mapping[str, Any], path: str, base: Path) -> NginxSettings:
    """The nginx keys of a target's mapping (the loader refused unknown keys).

    :raises ConfigError: a bad value, naming its key path.
    """
    return NginxSettings(*val.layout_options(data, path, base, OPTION_KEYS, PATH_OPTIONS, options))
