"""The keepalived binary as lbctl and an operator run it: ``keepalived -t`` on a
candidate file, and the command line that starts it (docs/high-availability.md)."""

from __future__ import annotations

import os
import shlex

from lbctl.errors import ValidationError
from lbctl.targets.check import CHECK_TIMEOUT, reason
from lbctl.targets.process import locate, run

# keepalived -t (2.2.7) exits non-zero on what it reports (an unknown keyword, an unknown
# interface), but lbctl refuses a reported unknown keyword even under a zero exit.
REFUSED = ("Unknown keyword",)
MARKERS = REFUSED + ("Unknown", "invalid", "Invalid", "cannot", "ignoring", "WARNING")


def check(path: str | os.PathLike, binary: str = "keepalived", timeout: float = CHECK_TIMEOUT) -> None:
    """:raises ValidationError: keepalived rejected the file.  :raises CommandError: it could not run."""
    result = run([binary, "-t", "-l", "-n", "-f", str(path)], timeout=timeout)
    if result.returncode != 0 or any(word in result.output for word in REFUSED):
        raise ValidationError(f"keepalived rejected {path}: {reason(result.output, MARKERS)}")


def start_command(target) -> str:
    """Its own pid files (``-p``; the VRRP child's beside it) and this config (``target``: its config.Target)."""
    pid_file = target.options.pid_file
    return shlex.join([locate(target.binary), "-f", str(target.config), "-p", pid_file,
                       "-r", f"{pid_file.removesuffix('.pid')}-vrrp.pid", "--vrrp"])
