"""Secrets: the one place that knows every secret value this process has seen and
masks it (lbctl.config.secrets reads them from an environment variable or a file).

A secret is remembered when it is read (the Consul ACL token, a BIG-IP password)
or received (a BIG-IP login token).  ``mask`` replaces each with ``***`` in text
that leaves lbctl: the CLI's stdout and stderr (``guard_streams``), log records
(``watch/logs.py``), the audit log and apply records (``scrub``), and the status
server's pages.  A server that echoes a token back in an error body therefore
shows ``***``.  Values shorter than ``MIN_LENGTH`` are not masked: they would
blank out ordinary words.  Documented in docs/configuration.md ("Secrets").
"""

from __future__ import annotations

import base64
import sys
import threading
from typing import Any, TextIO
from urllib.parse import quote

MIN_LENGTH = 4
MASK = "***"
_known: set[str] = set()
_order: list[str] = []  # longest first, so that a secret inside another is masked whole
_lock = threading.Lock()


def remember(value: str | None) -> None:
    """Mask ``value`` from now on, as written and as it looks in a URL or in JSON."""
    if not value or len(value) < MIN_LENGTH:
        return
    import json  # here: a command that reads no secret (lbctl render) does not need it

    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1]}
    with _lock:
        new = forms - _known
        if new:
            _known.update(new)
            _order[:] = sorted(_known, key=len, reverse=True)


def remember_login(username: str, password: str) -> None:
    """A password, and the HTTP Basic credential built from it."""
    remember(password)
    remember(base64.b64encode(f"{username}:{password}".encode()).decode())


def mask(text: str) -> str:
    for value in _order:
        if value in text:
            text = text.replace(value, MASK)
    return text


def scrub(value: Any) -> Any:
    """``value`` (a record for a file: dicts, lists, strings) with every secret masked."""
    if not _order:
        return value
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


class MaskedStream:
    """A text stream whose ``write`` masks every known secret; the rest is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: Any) -> int:
        return self.stream.write(mask(text) if isinstance(text, str) else text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def guard_streams() -> None:
    """Mask secrets in everything written to ``sys.stdout`` and ``sys.stderr`` from now on."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskedStream):
            setattr(sys, name, MaskedStream(stream))
