"""A copy of an operator's configuration tree with lbctl's candidate file in it, for
the load balancer's own check of the whole tree (a file included from nginx.conf or
Debian's apache2.conf is checked in its place)."""

from __future__ import annotations

import shutil
from pathlib import Path

from lbctl.errors import ApplyError


def stage_tree(main_config: Path, included: Path, candidate: str, stage: Path) -> Path:
    """Copy the directory of ``main_config`` to ``stage``, with ``candidate`` in place
    of ``included``, and every absolute path into the tree pointed into the copy, so
    that the load balancer's own check (``nginx -t``, ``apache2 -t``) reads the whole
    configuration as it will be.  Returns the staged main file.

    :raises ApplyError: the tree cannot be copied.
    """
    root = main_config.resolve().parent
    try:
        shutil.copytree(root, stage, symlinks=False, ignore_dangling_symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise ApplyError(f"cannot stage {root} to check it: {exc}") from None
    inc = included.resolve()
    staged_inc = stage / inc.relative_to(root) if inc.is_relative_to(root) else stage / ".lbctl-included" / inc.name
    staged_inc.parent.mkdir(parents=True, exist_ok=True)
    staged_inc.write_text(candidate)
    for path in stage.rglob("*"):
        if path.is_file() and path != staged_inc:
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            moved = text.replace(str(inc), str(staged_inc)).replace(f"{root}/", f"{stage}/")
            if moved != text:
                path.write_text(moved)
    return stage / main_config.name
