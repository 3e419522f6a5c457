"""The Jinja2 environment: strict, no autoescaping (these are config files), and
a loader that prefers the user's template directory over the packaged one."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2


def packaged_templates() -> Path:
    """The templates shipped with lbctl: ``lbctl/templates`` in an installed wheel,
    the top-level ``templates/`` in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def duration(ms: int) -> str:
    """Milliseconds in the shortest exact unit both HAProxy and nginx read."""
    if ms % 3_600_000 == 0:
        return f"{ms // 3_600_000}h"
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def seconds(ms: int) -> str:
    """Whole seconds, rounded up, at least 1: for directives that take no ms (nginx fail_timeout)."""
    return f"{max(1, -(-ms // 1000))}s"


def endpoint(obj) -> str:
    """A member's or listener's ``address:port``, with IPv6 addresses in brackets."""
    address = obj.address
    return f"[{address}]:{obj.port}" if ":" in address else f"{address}:{obj.port}"


@lru_cache(maxsize=8)
def jinja_environment(template_dir: str | None = None) -> jinja2.Environment:
    dirs = [template_dir] if template_dir else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*dirs, str(packaged_templates())]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    env.filters["seconds"] = seconds
    env.filters["endpoint"] = endpoint
    return env
