"""The haproxy binary as lbctl and an operator run it: ``haproxy -c`` on a
candidate file, and the command line that starts it (docs/running.md)."""

from __future__ import annotations

import os
import shlex

from lbctl.errors import ValidationError
from lbctl.targets.check import CHECK_TIMEOUT, reason
from lbctl.targets.process import locate, run


def check(path: str | os.PathLike, binary: str = "haproxy", timeout: float = CHECK_TIMEOUT) -> None:
    """:raises ValidationError: haproxy rejected the file.  :raises CommandError: it could not run."""
    result = run([binary, "-c", "-f", str(path)], timeout=timeout)  # -q would hide the alerts
    if result.returncode != 0:
        raise ValidationError(f"haproxy rejected {path}: {reason(result.output, ('[ALERT]', 'will not start'))}")


def start_command(target) -> str:
    """Master-worker, with the master CLI lbctl reloads through (``target``: its config.Target)."""
    argv = [locate(target.binary), "-W", "-f", str(target.config), "-S", f"{target.master_socket},level,admin"]
    if target.master_log is None:
        return shlex.join(argv[:1] + ["-D"] + argv[1:])
    return f"{shlex.join(argv)} 2>>{shlex.quote(str(target.master_log))} </dev/null &"
