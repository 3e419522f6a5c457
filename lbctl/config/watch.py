"""Settings of ``lbctl watch`` (``watch``), the removal guard (``guard``), the
metrics server (``metrics``) and the operator page's access (``ui``) in lbctl.yml.
Every default is a field default here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbctl import guard
from lbctl.config import secrets
from lbctl.config import values as val

WATCH_KEYS = ("min_wait", "max_wait", "retry_max", "route_grace")
GUARD_KEYS = ("max_removal", "min_members")
METRICS_KEYS = ("listen",)
UI_KEYS = ("auth",)
AUTH_KEYS = ("token_env", "token_file", "user", "password_env", "password_file")


@dataclass(frozen=True)
class WatchSettings:
    min_wait_ms: int = 0  # quiescence: wait this long after a change for more changes (0: none) ...
    max_wait_ms: int = 5_000  # ... but never longer than this after the first one
    retry_max_ms: int = 30_000  # backoff cap when applying or reading Consul fails
    route_grace_ms: int = 300_000  # a service's routes outlive its last instance this long (0: not at all)


def watch(raw: Any, path: str = "watch") -> WatchSettings:
    for moved in ("max_removal", "min_members"):
        if isinstance(raw, dict) and moved in raw:
            raise val.fail(f"{path}.{moved}", f"moved to guard.{moved} (the removal guard covers every command now)")
    data = val.section(raw or {}, path, WATCH_KEYS)
    d = WatchSettings()
    settings = WatchSettings(
        min_wait_ms=val.optional(data, "min_wait", path, val.duration, d.min_wait_ms, True),
        max_wait_ms=val.optional(data, "max_wait", path, val.duration, d.max_wait_ms),
        retry_max_ms=val.optional(data, "retry_max", path, val.duration, d.retry_max_ms),
        route_grace_ms=val.optional(data, "route_grace", path, val.duration, d.route_grace_ms, True),
    )
    if settings.min_wait_ms > settings.max_wait_ms:
        raise val.fail(f"{path}.min_wait", "must not be longer than max_wait")
    return settings


def guard_policy(raw: Any, path: str = "guard") -> guard.Policy:
    """``guard: {max_removal: 0.5, min_members: 0}``: the removal guard's limits (lbctl/guard.py)."""
    data = val.section(raw or {}, path, GUARD_KEYS)
    d = guard.Policy()
    return guard.Policy(val.optional(data, "max_removal", path, val.share, d.max_removal),
                        val.optional(data, "min_members", path, val.integer, d.min_members, 0, 100_000))


def metrics_listen(raw: Any, path: str = "metrics") -> tuple[str, int] | None:
    """``metrics: {listen: 127.0.0.1:9105}``: where ``lbctl watch`` serves /metrics, if anywhere."""
    data = val.section(raw or {}, path, METRICS_KEYS)
    return val.host_port(data["listen"], f"{path}.listen") if data.get("listen") else None


@dataclass(frozen=True)
class UiAuth:
    """How the operator page and /api/v1/status are protected: a bearer token, or basic
    auth (``user`` and a password), the secret kept where lbctl.yml says (lbctl.config.secrets)."""

    user: str | None  # None: a bearer token
    env: str | None
    file: Path | None

    def secret(self) -> str:
        """:raises ConfigError: the variable is not set, the file cannot be read or is empty."""
        return secrets.read(self.env, self.file, "ui.auth", "password" if self.user else "token")


def ui_auth(raw: Any, base: Path, path: str = "ui") -> UiAuth | None:
    """``ui: {auth: {token_file: F}}`` or ``ui: {auth: {user: U, password_file: F}}`` (``_env``: a variable)."""
    data = val.section(raw or {}, path, UI_KEYS)
    if data.get("auth") is None:
        return None
    where = f"{path}.auth"
    auth = val.section(data["auth"], where, AUTH_KEYS)
    if auth.get("user") is None:
        if auth.get("password_env") is not None or auth.get("password_file") is not None:
            raise val.fail(where, "a password needs a user (or use token_env/token_file for a bearer token)")
        env, file = secrets.where(auth, "token", where, base, required=True)
        return UiAuth(None, env, file)
    if auth.get("token_env") is not None or auth.get("token_file") is not None:
        raise val.fail(where, "takes either a token or a user and password, not both")
    user = val.ident(auth["user"], f"{where}.user")
    env, file = secrets.where(auth, "password", where, base, required=True)
    return UiAuth(user, env, file)
