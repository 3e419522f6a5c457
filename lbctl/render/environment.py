"""The Jinja2 environment: strict, no autoescaping (these are config files), a
loader that prefers the user's template directory over the packaged one, and a
cache of compiled templates in the user's own cache directory."""

from __future__ import annotations

from functools import lru_cache

import jinja2
import jinja2.bccache

from lbctl.render.paths import cache_dir, search_path

__all__ = ["cache_dir", "jinja_environment", "duration", "seconds", "endpoint"]  # cache_dir: for the tests


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


@lru_cache(maxsize=8)
def jinja_environment(template_dir: str | None = None) -> jinja2.Environment:
    cached = cache_dir()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search_path(template_dir)),
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
