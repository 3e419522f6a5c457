"""Run a target's own configuration check on a candidate file.

The check runs the real binary (``haproxy -c``, ``nginx -t``) and turns a
rejection into a one-line ``ValidationError`` carrying the target's own words.
Neither check binds ports or resolves everything a reload will (see
docs/upstream.md#haproxy-check-limits and #nginx-check-limits): a passed check is necessary, not sufficient.
"""

from __future__ import annotations

import os
import re

from lbctl.errors import ValidationError
from lbctl.targets.process import run

CHECK_TIMEOUT = 60.0  # a 100,000-server haproxy.cfg checks in about 1.3 s here


def haproxy(path: str | os.PathLike, binary: str = "haproxy", timeout: float = CHECK_TIMEOUT) -> None:
    """:raises ValidationError: haproxy rejected the file.  :raises CommandError: it could not run."""
    result = run([binary, "-c", "-f", str(path)], timeout=timeout)  # -q would hide the alerts
    if result.returncode != 0:
        raise ValidationError(f"haproxy rejected {path}: {reason(result.output, ('[ALERT]', 'will not start'))}")


def nginx(path: str | os.PathLike, binary: str = "nginx", timeout: float = CHECK_TIMEOUT,
          prefix: str | os.PathLike | None = None) -> None:
    """:raises ValidationError: nginx rejected the file.  :raises CommandError: it could not run."""
    argv = [binary, "-t", "-q", "-c", str(path)]
    if prefix is not None:
        argv += ["-p", str(prefix)]
    result = run(argv, timeout=timeout)
    if result.returncode != 0:
        raise ValidationError(f"nginx rejected {path}: {reason(result.output, ('[emerg]', '[alert]'))}")


NOISE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |(?<=\]) +\(\d+\)|\d+#\d+: ")
GENERIC = ("Error(s) found in configuration file", "Fatal errors found in configuration", "test failed")


def reason(output: str, markers: tuple[str, ...]) -> str:
    """The lines of ``output`` that say why, without timestamps and pids, on one line."""
    lines = [NOISE.sub("", line.strip()) for line in output.splitlines() if line.strip()]
    useful = [line for line in lines if any(m in line for m in markers) and not any(g in line for g in GENERIC)]
    return "; ".join(useful or lines or ["no reason given"])


CHECKS = {"haproxy": haproxy, "nginx": nginx}
