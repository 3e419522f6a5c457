"""lbctl.yml: where the model comes from and which targets it goes to.

Documented in docs/configuration.md.  Found via ``--config`` or ``LBCTL_CONFIG``.
Relative paths are relative to the config file's directory.  Every default
lives here or in ``settings.py`` (the render options).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from lbctl import bigip_config, guard, settings, sources
from lbctl import validate as v
from lbctl.errors import ConfigError

TOP_KEYS = ("source", "templates", "state_dir", "targets", "watch", "election", "audit_log", "metrics", "guard")
GUARD_KEYS = ("max_removal", "min_members")
METRICS_KEYS = ("listen",)
SOURCE_KEYS = ("inventory", "consul")
PROBE_KEYS = ("url", "expect_status", "host", "timeout")


@dataclass(frozen=True)
class Probe:
    """An HTTP GET that must answer ``expect_status`` after every change."""

    url: str
    expect_status: int = 200
    host: str | None = None
    timeout_ms: int = 1000


@dataclass(frozen=True)
class Target:
    """One load balancer lbctl writes to.  ``options`` is what is rendered into its config."""

    name: str
    kind: str
    config: Path
    options: Any
    binary: str
    state_dir: Path
    probes: tuple[Probe, ...] = ()
    keep_backups: int = 10
    lock_timeout_ms: int = 120_000
    check_timeout_ms: int = 60_000
    reload_timeout_ms: int = 15_000
    # haproxy
    master_socket: Path | None = None
    master_log: Path | None = None  # where the master's stderr goes: reload failures quote it
    shared: bool = False  # with an election, only the leader writes to it (a BIG-IP pair, say)
    runtime_api: bool = True  # member changes through the stats socket, without a reload
    slots: int = 0  # spare server slots per backend (0: servers named after members, added and deleted at runtime)
    write_delay_ms: int = 1000  # lbctl watch: how long the file may lag a runtime API change (writes coalesce)
    # nginx: the main file when ``config`` is a file it includes
    main_config: Path | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None
    inventory: Path | None
    templates: str | None
    state_dir: Path
    targets: dict[str, Target] = field(default_factory=dict)
    consul: sources.ConsulSettings | None = None
    watch: sources.WatchSettings = sources.WatchSettings()
    election: sources.ElectionSettings | None = None
    audit_log: Path | None = None
    metrics_listen: tuple[str, int] | None = None
    guard: guard.Policy = guard.Policy()  # the removal guard's limits; the commands add --force


TARGET_KEYS = {
    "common": ("kind", "config", "binary", "probes", "keep_backups", "lock_timeout", "check_timeout", "reload_timeout",
               "shared"),
    "haproxy": ("master_socket", "master_log", "runtime_api", "slots", "write_delay"),
    "nginx": ("main_config",),
}
DEFAULT_STATE_DIR = Path("/var/lib/lbctl")
DEFAULT_MASTER_SOCKET = Path("/run/haproxy-master.sock")
SOCKET_MAX = 97  # HAProxy: sun_path's 108 bytes, less room for the temporary name it binds first


def load(path: str | Path) -> Config:
    """Read and validate lbctl.yml.  :raises ConfigError: naming the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    try:
        return from_raw(raw or {}, path.resolve().parent, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def from_raw(raw: Any, base: Path, path: Path | None = None) -> Config:
    data = v.fields(raw, "", TOP_KEYS)
    source = v.fields(data.get("source") or {}, "source", SOURCE_KEYS)
    state_dir = resolve(base, v.optional(data, "state_dir", "", local_path, str(DEFAULT_STATE_DIR)))
    templates = v.optional(data, "templates", "", local_path, None)
    targets = {name: target(name, body, f"targets.{name}", base, state_dir)
               for name, body in sorted(v.mapping(data.get("targets") or {}, "targets").items(), key=lambda kv: str(kv[0]))}
    for name in targets:
        v.ident(name, f"targets[{v.show(name)}]")
    inventory = v.optional(source, "inventory", "source", local_path, None)
    consul = sources.consul(source["consul"], base) if source.get("consul") is not None else None
    election = sources.election(data["election"], base) if data.get("election") is not None else None
    if election is not None and election.consul is None and consul is None:
        raise v.fail("election.consul", "is required when source.consul is not set")
    metrics = v.fields(data.get("metrics") or {}, "metrics", METRICS_KEYS)
    audit = v.optional(data, "audit_log", "", local_path, None)
    return Config(path, resolve(base, inventory) if inventory else None,
                  str(resolve(base, templates)) if templates else None, state_dir, targets,
                  consul, sources.watch(data.get("watch")), election, resolve(base, audit) if audit else None,
                  sources.address(metrics["listen"], "metrics.listen") if metrics.get("listen") else None,
                  guard_policy(data.get("guard")))


def guard_policy(raw: Any, path: str = "guard") -> guard.Policy:
    """``guard: {max_removal: 0.5, min_members: 0}``: the removal guard's limits (guard.py)."""
    data = v.fields(raw or {}, path, GUARD_KEYS)
    base = guard.Policy()
    share = data.get("max_removal", base.max_removal)
    if type(share) not in (int, float) or not 0 < share <= 1:
        raise v.fail(f"{path}.max_removal", "must be a share above 0 and at most 1 (0.5 = half)", share)
    return guard.Policy(float(share), v.optional(data, "min_members", path, v.integer, base.min_members, 0, 100_000))


def target(name: str, raw: Any, path: str, base: Path, state_dir: Path) -> Target:
    data = v.mapping(raw, path)
    kind = v.choice(data.get("kind"), f"{path}.kind", settings.KINDS + (bigip_config.KIND,))
    if kind == bigip_config.KIND:  # an API, not a file: its own keys (bigip_config.py)
        return Target(name, kind, None, bigip_config.parse(data, path, base), "", state_dir / name, slots=0,
                      lock_timeout_ms=v.optional(data, "lock_timeout", path, v.duration_ms, 120_000),
                      shared=v.optional(data, "shared", path, sources.boolean, True))  # a device many controllers see
    option_keys = tuple(f.name.removesuffix("_ms") for f in fields(settings.OPTION_TYPES[kind]))
    own = TARGET_KEYS["common"] + TARGET_KEYS[kind]
    v.fields(data, path, own + tuple(k for k in option_keys if k != "layout"), ("config",))
    options_raw = {k: resolve_text(base, data[k]) if k in settings.PATH_OPTIONS else data[k]
                   for k in option_keys if k in data}
    main_config = v.optional(data, "main_config", path, local_path, None)
    if kind == "nginx":
        options_raw["layout"] = "include" if main_config else "main"
    options = settings.options(kind, options_raw, path)
    return sockets_fit(path, Target(
        name=name,
        kind=kind,
        config=resolve(base, v.optional(data, "config", path, local_path, None)),
        options=options,
        binary=resolve_text(base, v.optional(data, "binary", path, local_path, kind), bare_name=True),
        state_dir=state_dir / name,
        probes=tuple(probe(p, f"{path}.probes[{i}]") for i, p in enumerate(v.sequence(data.get("probes") or [], f"{path}.probes"))),
        keep_backups=v.optional(data, "keep_backups", path, v.integer, 10, 1, 1000),
        lock_timeout_ms=v.optional(data, "lock_timeout", path, v.duration_ms, 120_000),
        check_timeout_ms=v.optional(data, "check_timeout", path, v.duration_ms, 60_000),
        reload_timeout_ms=v.optional(data, "reload_timeout", path, v.duration_ms, 15_000),
        master_socket=resolve(base, v.optional(data, "master_socket", path, local_path, str(DEFAULT_MASTER_SOCKET)))
        if kind == "haproxy" else None,
        master_log=resolve(base, data["master_log"]) if kind == "haproxy" and data.get("master_log") else None,
        shared=v.optional(data, "shared", path, sources.boolean, False),
        runtime_api=v.optional(data, "runtime_api", path, sources.boolean, True),
        slots=v.optional(data, "slots", path, v.integer, 0, 0, 10_000),
        main_config=resolve(base, main_config) if main_config else None,
        write_delay_ms=v.optional(data, "write_delay", path, v.duration_ms, 1000),
    ))


def sockets_fit(path: str, t: Target) -> Target:
    """HAProxy refuses a UNIX socket path longer than ``SOCKET_MAX`` bytes, and says so
    only when it starts (docs/running.md): refuse it here, naming the key."""
    if t.kind == "haproxy":
        for key, sock in (("master_socket", str(t.master_socket)), ("stats_socket", t.options.stats_socket)):
            if len(sock.encode()) > SOCKET_MAX:
                raise v.fail(f"{path}.{key}", f"is longer than the {SOCKET_MAX} bytes HAProxy accepts for "
                             "a UNIX socket path; use a shorter directory", sock)
    return t


def probe(raw: Any, path: str) -> Probe:
    data = v.fields(raw, path, PROBE_KEYS, ("url",))
    url = data["url"]
    try:
        parts = urlsplit(url) if isinstance(url, str) and url.isprintable() and " " not in url else None
        ok = parts is not None and parts.scheme in ("http", "https") and parts.hostname and parts.port != 0
    except ValueError:  # a bad port
        ok = False
    if not ok:
        raise v.fail(f"{path}.url", "must be an http:// or https:// URL", url)
    return Probe(
        url=url,
        expect_status=v.optional(data, "expect_status", path, v.integer, 200, 100, 599),
        host=v.optional(data, "host", path, v.hostname, None),
        timeout_ms=v.optional(data, "timeout", path, v.duration_ms, 1000),
    )


def local_path(value: Any, path: str) -> str:
    """A file path as an operator writes it: relative or absolute, no control characters."""
    if isinstance(value, str) and value and value.isprintable() and len(value) <= 1024:
        return value
    raise v.fail(path, "must be a file path", value)


def resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def resolve_text(base: Path, value: Any, bare_name: bool = False) -> Any:
    """A path option (still text, validated later) relative to ``base`` when it is relative.
    With ``bare_name``, a name without '/' stays as it is (``binary: haproxy``: from PATH)."""
    if not isinstance(value, str) or not value or value.startswith("/") or (bare_name and "/" not in value):
        return value
    return os.path.normpath(base / value)
