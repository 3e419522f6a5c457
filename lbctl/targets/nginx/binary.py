"""The nginx binary as lbctl and an operator run it: ``nginx -t`` on a
candidate file, and the command line that starts it (docs/running.md)."""

from __future__ import annotations

import os
import shlex

from lbctl.errors import ValidationError
from lbctl.targets.check import CHECK_TIMEOUT, reason
from lbctl.targets.process import locate, run


def check(path: str | os.PathLike, binary: str = "nginx", timeout: float = CHECK_TIMEOUT,
          prefix: str | os.PathLike | None = None) -> None:
    """:raises ValidationError: nginx rejected the file.  :raises CommandError: it could not run."""
    argv = [binary, "-t", "-q", "-c", str(path)]
    if prefix is not None:
        argv += ["-p", str(prefix)]
    result = run(argv, timeout=timeout)
    if result.returncode != 0:
        raise ValidationError(f"nginx rejected {path}: {reason(result.output, ('[emerg]', '[alert]'))}")


def start_command(target) -> str:
    """On lbctl's file, or on the operator's main file that includes it (``target``: its config.Target)."""
    binary = locate(target.binary)
    if target.main_config is not None:
        return shlex.join([binary, "-c", str(target.main_config)])
    return shlex.join([binary, "-c", str(target.config), "-e", target.options.error_log])
