"""What the configuration checks of file targets share (each kind's own is its
``binary.check``: ``haproxy -c``, ``nginx -t``).

A check runs the real binary and turns a rejection into a one-line
``ValidationError`` carrying the target's own words.  Neither check binds ports
or resolves everything a reload will (see docs/upstream.md#haproxy-check-limits
and #nginx-check-limits): a passed check is necessary, not sufficient.
"""

from __future__ import annotations

import os
import re

from lbctl import kinds

CHECK_TIMEOUT = 60.0  # a 100,000-server haproxy.cfg checks in about 1.3 s here


def check(kind: str, path: str | os.PathLike, binary: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Run file ``kind``'s own check on ``path``.

    :raises ValidationError: the binary rejected the file.  :raises CommandError: it could not run.
    """
    kinds.get(kind).module("binary").check(path, binary, timeout)


NOISE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d |(?<=\]) +\(\d+\)|\d+#\d+: ")
GENERIC = ("Error(s) found in configuration file", "Fatal errors found in configuration", "test failed")


def reason(output: str, markers: tuple[str, ...]) -> str:
    """The lines of ``output`` that say why, without timestamps and pids, on one line."""
    lines = [NOISE.sub("", line.strip()) for line in output.splitlines() if line.strip()]
    useful = [line for line in lines if any(m in line for m in markers) and not any(g in line for g in GENERIC)]
    return "; ".join(useful or lines or ["no reason given"])
