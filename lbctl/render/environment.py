"""The Jinja2 environment: strict, no autoescaping (these are config files), a
loader that prefers the user's template directory over the packaged one, and a
cache of compiled templates in the user's own cache directory."""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path

import jinja2
import jinja2.bccache


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


class CompiledCache(jinja2.bccache.FileSystemBytecodeCache):
    """Jinja2's cache of compiled templates, one file per template, checked against
    the template's source (a template that changed is compiled again), that never
    fails a render: a file it cannot read, write or decode is compiled instead."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # a truncated or foreign file: compile the template
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/lbctl/templates`` (default ``~/.cache``), made if missing, if
    it is a directory of this user's that no one else may write to; else None (no
    cache: what it holds is code lbctl runs)."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        path = base / "lbctl" / "templates"
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = os.lstat(path)
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
        return None
    return path


@lru_cache(maxsize=8)
def jinja_environment(template_dir: str | None = None) -> jinja2.Environment:
    dirs = [template_dir] if template_dir else []
    cached = cache_dir()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*dirs, str(packaged_templates())]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=CompiledCache(str(cached)) if cached else None,
    )
    env.filters["duration"] = duration
    env.filters["seconds"] = seconds
    env.filters["endpoint"] = endpoint
    return env
