"""The value validators of lbctl.yml, each defined once (docs/configuration.md#values).

Each takes the raw value and its key path (``targets.edge.lock_timeout``) and
returns the checked value, or raises a one-line ``ConfigError``:
``<key path>: must be ... (got <value>)``; ``loader.load`` puts the file in front.
Names, ports, integers, enumerations and host names are lbctl.validate's (the
inventory's rules): lbctl.yml's values are rendered into configs too.  Pure: no I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping

from lbctl import validate as v
from lbctl.errors import ConfigError
from lbctl.validate import (address, choice, fail, ident, integer, join, optional, pattern, port,  # noqa: F401
                            sequence)  # re-exported: the inventory's rules hold for lbctl.yml too
from lbctl.validate import fields as section  # noqa: F401  (a mapping with only the allowed keys)

DURATION_TEXT = "a duration such as 500ms, 2s, 1m (at most 24h)"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
PATH_MAX = 1024
rendered_path = v.file_path  # an absolute path, in the narrow character set a rendered config may hold


def duration(value: Any, path: str, zero: bool = False) -> int:
    """``250ms``, ``2s``, ``1m``, ``1h`` or a bare number of seconds, as milliseconds.

    ``zero``: the option means "none" at 0 (``watch.min_wait: 0s``), so every spelling
    of zero (``0``, ``0ms``, ``0s``, ``0m``, ``0h``) is 0.  Without it zero is refused:
    a timeout of 0 makes no sense.
    """
    if zero:
        match = v.DURATION.fullmatch(str(value) if type(value) is int else value) if type(value) in (int, str) else None
        if match and int(match.group(1)) == 0:
            return 0
        try:
            return v.duration_ms(value, path)
        except ConfigError:
            raise fail(path, f"must be {DURATION_TEXT}, or 0", value) from None
    return v.duration_ms(value, path)


def boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise fail(path, "must be true or false", value)


def local_path(value: Any, path: str) -> str:
    """A file path as an operator writes it: relative or absolute, no control characters."""
    if isinstance(value, str) and value and value.isprintable() and len(value) <= PATH_MAX:
        return value
    raise fail(path, "must be a file path", value)


def env_name(value: Any, path: str) -> str:
    return v.pattern(value, path, ENV_NAME, "an environment variable name")


def printable(value: Any, path: str) -> str:
    if isinstance(value, str) and value.isprintable() and len(value) <= 4096:
        return value
    raise fail(path, "must be printable text", value)


def host_port(value: Any, path: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``); a bare host is on ``default_port`` if there is one."""
    if not isinstance(value, str):
        raise fail(path, "must be host:port", value)
    host, sep, port_ = value.rpartition(":") if not value.endswith("]") else (value, "", "")
    if (not sep or (":" in host and not host.startswith("["))) and default_port is not None:
        host, port_ = value, str(default_port)
    elif not sep or ":" in host and not host.startswith("["):
        raise fail(path, "must be host:port", value)
    if not port_.isdigit():
        raise fail(path, "must be host:port", value)
    return v.address(host.strip("[]"), path), port(int(port_), path)


def share(value: Any, path: str) -> float:
    """A share above 0 and at most 1 (``0.5``: half)."""
    if type(value) in (int, float) and 0 < value <= 1:
        return float(value)
    raise fail(path, "must be a share above 0 and at most 1 (0.5 = half)", value)


def resolve(base: Path, value: str) -> Path:
    """``value`` relative to ``base`` (the config file's directory) unless it is absolute."""
    p = Path(value)
    return p if p.is_absolute() else base / p


def resolve_text(base: Path, value: Any, bare_name: bool = False) -> Any:
    """A path option (still text, validated later) relative to ``base`` when it is relative.
    With ``bare_name``, a name without '/' stays as it is (``binary: haproxy``: from PATH)."""
    if not isinstance(value, str) or not value or value.startswith("/") or (bare_name and "/" not in value):
        return value
    return os.path.normpath(base / value)


def file_in(base: Path, data: Mapping, key: str, path: str) -> Path | None:
    """An optional file named at ``key``, relative to the config file's directory."""
    value = optional(data, key, path, local_path, None)
    return resolve(base, value) if value else None


def layout_options(data: Mapping, path: str, base: Path, keys: tuple[str, ...], path_keys: tuple[str, ...],
                   build) -> tuple[Any, Path | None]:
    """The render options of a kind with two layouts (nginx, apache) and its ``main_config``:
    ``keys`` taken from ``data`` (``path_keys`` relative to the config file), the layout
    ``include`` when a main config is named, else ``main``; ``build(raw, path)`` checks them."""
    raw = {k: resolve_text(base, data[k]) if k in path_keys else data[k] for k in keys if k in data}
    main_config = file_in(base, data, "main_config", path)
    return build({**raw, "layout": "include" if main_config else "main"}, path), main_config


def overrides(cls: type, checks: Mapping[str, tuple], raw: Mapping[str, Any] | None, path: str) -> Any:
    """A ``cls`` (a dataclass of defaults) with the values given in ``raw``, each checked by
    ``checks[field]`` (a validator and its arguments).  Fields ending in ``_ms`` are given
    without the suffix, as durations (``120s``); ``None`` keeps a field's default off."""
    names = {f.name.removesuffix("_ms"): f.name for f in fields(cls)}
    data = v.fields(raw or {}, path, tuple(names))
    values = {}
    for key, value in data.items():
        name, where = names[key], join(path, key)
        if value is None:
            values[name] = None
        elif name.endswith("_ms"):
            values[name] = duration(value, where)
        else:
            check, *args = checks[name]
            values[name] = check(value, where, *args)
    return cls(**values)
