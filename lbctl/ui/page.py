"""The operator page's HTML, rendered with Jinja2 (autoescape on: every value from
discovery is untrusted), and its two assets, shipped in the package."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

HERE = Path(__file__).parent
ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
ASSETS = {"/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/ui/app.css": ("app.css", "text/css; charset=utf-8")}


def html(status: dict, refresh_s: int, fragment: bool = False) -> str:
    """The whole page, or (``fragment``) what goes inside ``<main id="content">``."""
    name = "content.html.j2" if fragment else "page.html.j2"
    return ENV.get_template(name).render(s=status, refresh=refresh_s)


@functools.cache
def asset(path: str) -> tuple[bytes, str] | None:
    """The body and content type of ``/ui/app.js`` or ``/ui/app.css``; None for any other path."""
    if path not in ASSETS:
        return None
    name, kind = ASSETS[path]
    return (HERE / "static" / name).read_bytes(), kind
