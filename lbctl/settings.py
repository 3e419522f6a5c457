"""Settings that shape the rendered configuration of each target kind.

Every default lives here.  Values come from lbctl.yml (see ``config.py``) and are
validated like inventory data, because they are rendered into configs too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from lbctl import validate as v


@dataclass(frozen=True)
class HAProxyOptions:
    """The global and defaults sections of haproxy.cfg (see docs/upstream.md#haproxy-globals)."""

    stats_socket: str = "/run/haproxy/admin.sock"
    state_file: str = "/var/lib/haproxy/server-state"
    maxconn: int = 4096
    hard_stop_after_ms: int = 120_000
    mworker_max_reloads: int = 5
    http_keep_alive_ms: int = 10_000


@dataclass(frozen=True)
class NginxOptions:
    """The main context of nginx.conf.  ``layout``: ``main`` (a whole nginx.conf)
    or ``include`` (only upstreams and servers, for a file included from ``http {}``)."""

    layout: str = "main"
    user: str | None = None  # the workers' user; the Debian build's default is nobody
    pid_file: str = "/run/nginx.pid"
    error_log: str = "/var/log/nginx/error.log"
    worker_processes: int = 2
    worker_connections: int = 1024
    worker_shutdown_timeout_ms: int = 120_000
    stream_module: str | None = "/usr/lib/nginx/modules/ngx_stream_module.so"
    temp_dir: str | None = None


OPTION_TYPES = {"haproxy": HAProxyOptions, "nginx": NginxOptions}
# Options that are file paths: lbctl.yml may give them relative to itself (config.py).
PATH_OPTIONS = ("stats_socket", "state_file", "pid_file", "error_log", "stream_module", "temp_dir")
KINDS = tuple(OPTION_TYPES)
_CHECKS = {
    **{name: (v.file_path,) for name in PATH_OPTIONS},
    "maxconn": (v.integer, 1, 10_000_000), "mworker_max_reloads": (v.integer, 1, 1000),
    "worker_processes": (v.integer, 1, 1024), "worker_connections": (v.integer, 1, 1_000_000),
    "layout": (v.choice, ("main", "include")), "user": (v.ident,),
}


def options(kind: str, raw: Mapping[str, Any] | None = None, path: str = "options") -> Any:
    """Validated render options for ``kind`` from a mapping of overrides.

    Keys ending in ``_ms`` are given without the suffix, as durations (``120s``).
    :raises ConfigError: an unknown key or a bad value.
    """
    cls = OPTION_TYPES[kind]
    names = {f.name.removesuffix("_ms"): f.name for f in fields(cls)}
    data = v.fields(raw or {}, path, tuple(names))
    values = {}
    for key, value in data.items():
        name, where = names[key], v.join(path, key)
        if value is None:
            values[name] = None
        elif name.endswith("_ms"):
            values[name] = v.duration_ms(value, where)
        else:
            check, *args = _CHECKS[name]
            values[name] = check(value, where, *args)
    return cls(**values)
