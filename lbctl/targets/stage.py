"""A copy of an operator's configuration tree with lbctl's candidate file in it, for
the load balancer's own check of the whole tree (a file included from nginx.conf or
Debian's apache2.conf is checked in its place)."""

from __future__ import annotations

import os
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
    inc = included.resolve()
    staged_inc = stage / inc.relative_to(root) if inc.is_relative_to(root) else stage / ".lbctl-included" / inc.name
    try:
        shutil.copytree(root, stage, symlinks=True)
        staged_inc.parent.mkdir(parents=True, exist_ok=True)
        staged_inc.unlink(missing_ok=True)
        staged_inc.write_text(candidate)
        _copy_links(stage, root)
    except (OSError, shutil.Error) as exc:
        raise ApplyError(f"cannot stage {root} to check it: {exc}") from None
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


def _copy_links(stage: Path, root: Path, passes: int = 8) -> None:
    """Replace each symbolic link in ``stage`` by a copy of what it names: in the stage when
    it names something in ``root`` (Debian's ``mods-enabled/x.load -> ../mods-available/x.load``
    then holds the staged file), else the original.  Dangling links are dropped."""
    for _ in range(passes):
        links = [p for p in stage.rglob("*") if p.is_symlink()]
        if not links:
            return
        for link in links:
            target = Path(os.path.realpath(link))
            if target.is_relative_to(root):
                target = stage / target.relative_to(root)
            link.unlink()
            if target.is_dir():
                shutil.copytree(target, link, symlinks=True)
            elif target.is_file():
                shutil.copy2(target, link)
