"""The settings of a ``kind: apache`` target in lbctl.yml (docs/apache.md, docs/configuration.md).

``parse`` turns the target's mapping into ``ApacheSettings``: the render options (the
server-wide part of httpd.conf, the loopback balancer-manager and the spare member
slots) and ``main_config``, the operator's main file (Debian's apache2.conf) when lbctl
writes only a file it includes.  Every default is a field default here.
Pure and self-contained (only lbctl.config.values): the config loader reads it through
lbctl.kinds without loading the target's control code.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from lbctl.config import values as val

SHARED = False
LAYOUTS = ("main", "include")
MANAGER_PORT = 8405  # the balancer-manager's default port, on 127.0.0.1 (docs/apache.md#the-manager)


@dataclass(frozen=True)
class ApacheOptions:
    """Rendered into httpd.conf.  ``layout``: ``main`` (a whole httpd.conf) or ``include``
    (a file included from the distribution's apache2.conf): set by ``main_config``.
    ``manager``: host:port of the loopback VirtualHost serving /balancer-manager and
    /server-status.  No ``growth``: lbctl adds no member at runtime (runtime.py says why)."""

    layout: str = "main"
    user: str = "www-data"  # the children's user and group when started as root (Debian's)
    group: str = "www-data"
    pid_file: str = "/run/apache2/apache2.pid"
    error_log: str = "/var/log/apache2/error.log"
    run_dir: str = "/run/apache2"  # DefaultRuntimeDir: shared memory and mutexes
    module_dir: str = "/usr/lib/apache2/modules"
    threads_per_child: int = 25
    max_request_workers: int = 150
    manager: str = f"127.0.0.1:{MANAGER_PORT}"
    runtime_api: bool = True  # member changes through balancer-manager, without a graceful restart
    growth: int = 8  # spare member slots per balancer, for members added at runtime (0: none; Apache takes 1-100)

    @property
    def processes(self) -> int:
        """Child processes at full load (MaxRequestWorkers / ThreadsPerChild, rounded up)."""
        return -(-self.max_request_workers // self.threads_per_child)

    @property
    def manager_address(self) -> tuple[str, int]:
        host, _, port = self.manager.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class ApacheSettings:
    options: ApacheOptions = field(default_factory=ApacheOptions)
    main_config: Path | None = None
    write_delay_ms: int = 1000  # lbctl watch: how long the file may lag a runtime change (writes coalesce)


def loopback(value: Any, path: str) -> str:
    """``host:port`` on a loopback address (127.0.0.0/8 or ::1): the balancer-manager's."""
    host, port = val.host_port(value, path)
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise val.fail(path, "must be a loopback address and port (127.0.0.1:PORT or [::1]:PORT)", value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


PATH_OPTIONS = ("pid_file", "error_log", "run_dir", "module_dir")  # relative to lbctl.yml
OPTION_KEYS = tuple(f.name for f in fields(ApacheOptions) if f.name != "layout")
KEYS = ("main_config", "write_delay") + OPTION_KEYS
CHECKS = {**{name: (val.rendered_path,) for name in PATH_OPTIONS},
          "threads_per_child": (val.integer, 1, 1000), "max_request_workers": (val.integer, 1, 100_000),
          "layout": (val.choice, LAYOUTS), "user": (val.ident,), "group": (val.ident,),
          "manager": (loopback,), "runtime_api": (val.boolean,), "growth": (val.integer, 0, 100)}


def options(raw: Mapping[str, Any] | None = None, path: str = "options") -> ApacheOptions:
    """Validated render options from a mapping of overrides.  :raises ConfigError: naming the key."""
    return val.overrides(ApacheOptions, CHECKS, raw, path)


def parse(data: Mapping[str, Any], path: str, base: Path) -> ApacheSettings:
    """The apache keys of a target's mapping (the loader refused unknown keys).

    :raises ConfigError: a bad value, naming its key path.
    """
    d = ApacheSettings()
    return ApacheSettings(*val.layout_options(data, path, base, OPTION_KEYS, PATH_OPTIONS, options),
                          val.optional(data, "write_delay", path, val.duration, d.write_delay_ms))
