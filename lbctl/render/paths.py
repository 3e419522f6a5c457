"""Where templates are found and where compiled ones are kept, without Jinja2 (a
render whose saved patterns still hold does not import it: lbctl/render/warm.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def packaged_templates() -> Path:
    """The templates shipped with lbctl: ``lbctl/templates`` in an installed wheel,
    the top-level ``templates/`` in a source checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


def search_path(template_dir: str | None) -> list[str]:
    """The directories a template is looked up in, first match wins: the user's, then the packaged ones."""
    return [*([template_dir] if template_dir else []), str(packaged_templates())]


def cache_dir() -> Path | None:
    """``$XDG_CACHE_HOME/lbctl/templates`` (default ``~/.cache``), made if missing, if
    it is a directory of this user's that no one else may write to; else None (no
    cache: what it holds is code lbctl runs, and text it writes into configurations)."""
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
