"""Go-compatible parsing helpers: ``time.ParseDuration`` and ``strconv.ParseBool``.

Consul parses ``?wait=``, session ``TTL``/``LockDelay`` and check ``ttl`` values with
Go's duration syntax (``10s``, ``1m30s``, ``60000ms``, ``1.5h``), and query booleans
with ``ParseBool``.  Pure functions, no I/O.
"""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_duration(text: str) -> float:
    """Parse a Go duration string into seconds; raise ``ValueError`` if invalid."""
    s = text
    sign = 1.0
    if s[:1] in ("-", "+"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Format seconds the way Go's ``Duration.String`` does for whole values."""
    if seconds == 0:
        return "0s"
    neg = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:  # Go switches to ms, µs, then ns below one second
        ns = round(seconds * 1e9)
        out = f"{ns}ns" if ns < 1000 else (f"{ns / 1e3:g}\u00b5s" if ns < 1_000_000 else f"{ns / 1e6:g}ms")
    else:
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        out = ""
        if h:
            out += f"{int(h)}h"
        if h or m:
            out += f"{int(m)}m"
        out += f"{s:g}s"
    return ("-" if neg else "") + out


def parse_bool(text: str) -> bool:
    """Go ``strconv.ParseBool``; ``ValueError`` for anything else."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {text!r}: invalid syntax")
