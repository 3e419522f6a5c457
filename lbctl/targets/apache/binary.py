"""The apache2 binary as lbctl and an operator run it: ``apache2 -t`` on a candidate
file or a staged Debian tree, and the command line that starts it (docs/apache.md#running-it)."""

from __future__ import annotations

import os
import re
import shlex
import tempfile
from pathlib import Path

from lbctl.errors import ValidationError
from lbctl.targets.check import CHECK_TIMEOUT, reason
from lbctl.targets.process import locate, run

RUN_DIR = re.compile(r"^DefaultRuntimeDir (\S+)$", re.M)
ENVVARS = "envvars"  # Debian's: APACHE_RUN_DIR and the rest, which apache2.conf reads (apache2ctl sources it)
# What apache2ctl does first, in the tree "$0": read envvars, create the run directory (apache2 refuses a
# DefaultRuntimeDir that does not exist).
SOURCE_ENVVARS = (f'[ ! -r "$0/{ENVVARS}" ] || . "$0/{ENVVARS}"; '
                  '[ -z "$APACHE_RUN_DIR" ] || mkdir -p "$APACHE_RUN_DIR"; ')


def check(path: str | os.PathLike, binary: str = "apache2", timeout: float = CHECK_TIMEOUT,
          root: Path | None = None, confdir: Path | None = None) -> None:
    """``apache2 -t`` on ``path``: a self-contained httpd.conf, or, with ``root``, the main file of a
    (staged) tree whose ``envvars`` is sourced first, as apache2ctl does, with APACHE_CONFDIR set to
    ``confdir`` (the live tree, so the variables name the live run directories).

    :raises ValidationError: apache rejected the file.  :raises CommandError: it could not run.
    """
    argv = [binary, "-t", "-f", str(path)]
    renamed = {}  # what apache's message names -> the file it is
    if root is None:
        with tempfile.TemporaryDirectory(prefix="lbctl-apache-") as tmp:
            checked = _with_run_dir(Path(path), Path(tmp))
            renamed[checked] = str(path)
            result = run([*argv[:-1], checked], timeout=timeout)
    else:
        renamed[f"{root}/"] = f"{confdir or root}/"  # the staged tree's files by their live names
        script = SOURCE_ENVVARS + 'exec "$@"'
        env = {"APACHE_CONFDIR": str(confdir or root)}
        result = run(["sh", "-c", script, str(root), locate(binary), "-d", str(root), *argv[1:]],
                     timeout=timeout, env=env)
    if result.returncode != 0:
        lines = [line for line in reason(result.output, ()).split("; ") if line != "Syntax OK"]
        text = f"apache rejected {path}: {' '.join(lines)}"
        for shown, real in renamed.items():
            text = text.replace(shown, real)
        raise ValidationError(text)


def _with_run_dir(path: Path, tmp: Path) -> str:
    """``path``, or when its DefaultRuntimeDir does not exist (``lbctl validate -t apache`` on a host
    that never ran Apache; a target's check creates it first), a copy in ``tmp`` pointing it at ``tmp``:
    apache2 -t refuses a missing one, and checks nothing else there."""
    text = path.read_text()
    found = RUN_DIR.search(text)
    if found is None or Path(found.group(1)).is_dir():
        return str(path)
    copy = tmp / path.name
    copy.write_text(text[:found.start(1)] + str(tmp) + text[found.end(1):])
    return str(copy)


def start_command(target) -> str:
    """On lbctl's file, or on the operator's main file that includes it (``target``: its config.Target).
    apache2 puts itself in the background; a graceful restart is SIGUSR1 to the pid in its PidFile."""
    binary = locate(target.binary)
    if target.main_config is None:
        return shlex.join([binary, "-f", str(target.config), "-k", "start"])
    root = str(target.main_config.parent)
    argv = [binary, "-d", root, "-f", str(target.main_config), "-k", "start"]
    return shlex.join(["env", f"APACHE_CONFDIR={root}", "sh", "-c", SOURCE_ENVVARS + 'exec "$@"', root, *argv])
