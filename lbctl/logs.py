"""Logging for ``lbctl watch``: human lines by default, JSON lines with
``--log-format json``; known secrets are masked in every record."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

SECRETS: set[str] = set()  # values that must never reach a log (tokens, passwords)


def secret(value: str | None) -> None:
    if value and len(value) >= 4:
        SECRETS.add(value)


def mask(text: str) -> str:
    for value in SECRETS:
        text = text.replace(value, "***")
    return text


class Masking(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if SECRETS:
            record.msg, record.args = mask(record.getMessage()), None
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }, ensure_ascii=False)


def setup(fmt: str = "human", verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Masking())
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("urllib3", "f5", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
