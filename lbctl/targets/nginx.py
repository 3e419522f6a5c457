"""nginx: check the whole configuration tree with ``nginx -t`` on a staged copy,
reload with HUP and confirm it by worker generations and the error log
(docs/upstream.md#nginx-reload)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lbctl.errors import ApplyError, VerifyError
from lbctl.targets import check, nginx_ctl
from lbctl.targets.base import Change
from lbctl.targets.filetarget import FileTarget


class NginxTarget(FileTarget):
    kind = "nginx"

    def check(self, change: Change) -> None:
        timeout = self.settings.check_timeout_ms / 1000
        self.make_temp_dir()
        if self.settings.main_config is None:
            staged = self.staged(change)
            try:
                check.nginx(staged, self.settings.binary, timeout)
            finally:
                staged.unlink(missing_ok=True)
            return
        with tempfile.TemporaryDirectory(prefix="lbctl-nginx-") as tmp:
            main = stage_tree(self.settings.main_config, self.path, change.candidate, Path(tmp) / "conf")
            check.nginx(main, self.settings.binary, timeout)

    def make_temp_dir(self) -> None:
        """``temp_dir`` is lbctl's: create it (nginx creates only the last level of a temp path)."""
        temp_dir = self.settings.options.temp_dir
        if temp_dir:
            try:
                Path(temp_dir).mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                raise ApplyError(f"{self.name}: cannot create temp_dir {temp_dir}: {exc.strerror}") from None

    def reload(self, change: Change) -> None:
        opts = self.settings.options
        nginx_ctl.reload(opts.pid_file, opts.error_log, timeout=self.settings.reload_timeout_ms / 1000)

    def verify_process(self) -> None:
        if not self.running():
            raise VerifyError(f"{self.name}: nginx is not running (pid file {self.settings.options.pid_file})")

    def running(self) -> bool:
        return nginx_ctl.is_running(self.settings.options.pid_file)

    def process_status(self) -> dict:
        gen = nginx_ctl.generation(self.settings.options.pid_file)
        if gen is None:
            return {"running": False}
        return {"running": True, "master_pid": gen.master_pid, "workers": list(gen.workers),
                "shutting_down": list(gen.shutting_down)}


def stage_tree(main_config: Path, included: Path, candidate: str, stage: Path) -> Path:
    """Copy the directory of ``main_config`` to ``stage``, with ``candidate`` in place
    of ``included``, and every absolute path into the tree pointed into the copy, so
    that ``nginx -t`` reads the whole configuration as it will be.  Returns the staged main file.

    :raises ApplyError: the tree cannot be copied.
    """
    root = main_config.resolve().parent
    try:
        shutil.copytree(root, stage, symlinks=False, ignore_dangling_symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise ApplyError(f"cannot stage {root} for nginx -t: {exc}") from None
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
