"""lbctl.yml: where the model comes from and which targets it goes to.

Documented in docs/configuration.md.  Found via ``--config`` or ``LBCTL_CONFIG``.
Relative paths are relative to the config file's directory.  The top-level
sections and the keys every target has are read here; each kind's own keys by
its settings parser (``lbctl/targets/<kind>/settings.py``, found through the
registry, lbctl.kinds), the sources by consul.py, watch/guard/metrics by watch.py.
PyYAML is imported only when a file is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lbctl import guard, kinds
from lbctl.config import consul, watch
from lbctl.config import values as val
from lbctl.errors import ConfigError

TOP_KEYS = ("source", "templates", "state_dir", "targets", "watch", "election", "audit_log", "metrics", "guard", "ui")
SOURCE_KEYS = ("inventory", "consul")
PROBE_KEYS = ("url", "expect_status", "host", "timeout")
DEVICE_KEYS = ("kind", "lock_timeout", "shared")  # what every target has
FILE_KEYS = ("kind", "config", "binary", "probes", "keep_backups", "lock_timeout", "check_timeout", "reload_timeout",
             "shared")  # what every file target has
TARGET_KEYS = {"common": FILE_KEYS, **{name: kind.settings().KEYS for name, kind in kinds.KINDS.items()}}


@dataclass(frozen=True)
class Probe:
    """An HTTP GET that must answer ``expect_status`` after every change."""

    url: str
    expect_status: int = 200
    host: str | None = None
    timeout_ms: int = 1000


@dataclass(frozen=True)
class Target:
    """One load balancer lbctl writes to.  ``options`` is what is rendered into its config
    (a BIG-IP's: its settings).  The kind-specific fields default to their kind's defaults."""

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
    shared: bool = False  # with an election, only the leader writes to it (a BIG-IP, say)
    # The fields of a file kind's settings (lbctl/targets/<kind>/settings.py), copied by
    # ``target``, which reads their defaults there; these only stand in, for a Target made
    # without a config (``lbctl render -t haproxy``), which renders and checks but runs nothing.
    # haproxy
    master_socket: Path | None = None
    master_log: Path | None = None
    runtime_api: bool = False
    slots: int = 0
    write_delay_ms: int = 0
    # nginx, apache: the main file when ``config`` is a file it includes
    main_config: Path | None = None


@dataclass(frozen=True)
class Config:
    path: Path | None
    inventory: Path | None
    templates: str | None
    state_dir: Path
    targets: dict[str, Target] = field(default_factory=dict)
    consul: consul.ConsulSettings | None = None
    watch: watch.WatchSettings = watch.WatchSettings()
    election: consul.ElectionSettings | None = None
    audit_log: Path | None = None
    metrics_listen: tuple[str, int] | None = None
    guard: guard.Policy = guard.Policy()  # the removal guard's limits; the commands add --force
    ui_auth: watch.UiAuth | None = None  # who may read the operator page (lbctl.ui)


DEFAULT_STATE_DIR = Path("/var/lib/lbctl")
DEFAULTS = Target("", "", Path(), None, "", DEFAULT_STATE_DIR)  # the common keys' defaults


def options(kind: str, raw: Any = None, path: str = "options") -> Any:
    """The render options of a target ``kind`` from a mapping of overrides (defaults: none)."""
    return kinds.get(kind).settings().options(raw, path)


def without_config(kind: str) -> Target:
    """A target of ``kind`` with every default, named after it, for the commands that render
    and check without a config (``-t haproxy``): its file is ``<config_name>`` here."""
    return Target(kind, kind, Path(kinds.get(kind).config_name or kind), options(kind), kinds.get(kind).binary,
                  Path("."))


def load(path: str | Path) -> Config:
    """Read and validate lbctl.yml.  :raises ConfigError: naming the file and the key."""
    import yaml  # here, not at the top: a command without a config does not pay for it

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
    data = val.section(raw, "top level", TOP_KEYS)
    source = val.section(data.get("source") or {}, "source", SOURCE_KEYS)
    state_dir = val.resolve(base, val.optional(data, "state_dir", "", val.local_path, str(DEFAULT_STATE_DIR)))
    targets = {name: target(name, body, f"targets.{name}", base, state_dir)
               for name, body in sorted(val.v.mapping(data.get("targets") or {}, "targets").items(),
                                        key=lambda kv: str(kv[0]))}
    for name in targets:
        val.ident(name, f"targets[{val.v.show(name)}]")
    source_consul = consul.consul(source["consul"], base) if source.get("consul") is not None else None
    election = consul.election(data["election"], base) if data.get("election") is not None else None
    if election is not None and election.consul is None and source_consul is None:
        raise val.fail("election.consul", "is required when source.consul is not set")
    templates = val.file_in(base, data, "templates", "")
    return Config(path, val.file_in(base, source, "inventory", "source"), str(templates) if templates else None,
                  state_dir, targets, source_consul, watch.watch(data.get("watch")), election,
                  val.file_in(base, data, "audit_log", ""), watch.metrics_listen(data.get("metrics")),
                  watch.guard_policy(data.get("guard")), watch.ui_auth(data.get("ui"), base))


def target(name: str, raw: Any, path: str, base: Path, state_dir: Path) -> Target:
    data = val.v.mapping(raw, path)
    kind = val.choice(data.get("kind"), f"{path}.kind", tuple(kinds.KINDS))
    module = kinds.get(kind).settings()
    common = dict(lock_timeout_ms=val.optional(data, "lock_timeout", path, val.duration, DEFAULTS.lock_timeout_ms),
                  shared=val.optional(data, "shared", path, val.boolean, module.SHARED))
    if not kinds.get(kind).file:  # an API, not a file: no file, binary or probes
        val.section(data, path, DEVICE_KEYS + module.KEYS)
        return Target(name, kind, None, module.parse(data, path, base), "", state_dir / name, slots=0, **common)
    val.section(data, path, FILE_KEYS + module.KEYS, ("config",))
    own = module.parse(data, path, base)
    return Target(
        name=name,
        kind=kind,
        config=val.resolve(base, val.optional(data, "config", path, val.local_path, None)),
        binary=val.resolve_text(base, val.optional(data, "binary", path, val.local_path, kinds.get(kind).binary),
                                bare_name=True),
        state_dir=state_dir / name,
        probes=tuple(probe(p, f"{path}.probes[{i}]")
                     for i, p in enumerate(val.sequence(data.get("probes") or [], f"{path}.probes"))),
        keep_backups=val.optional(data, "keep_backups", path, val.integer, DEFAULTS.keep_backups, 1, 1000),
        check_timeout_ms=val.optional(data, "check_timeout", path, val.duration, DEFAULTS.check_timeout_ms),
        reload_timeout_ms=val.optional(data, "reload_timeout", path, val.duration, DEFAULTS.reload_timeout_ms),
        **common, **{f.name: getattr(own, f.name) for f in fields(own)},
    )


def probe(raw: Any, path: str) -> Probe:
    data = val.section(raw, path, PROBE_KEYS, ("url",))
    url = data["url"]
    try:
        parts = urlsplit(url) if isinstance(url, str) and url.isprintable() and " " not in url else None
        ok = parts is not None and parts.scheme in ("http", "https") and parts.hostname and parts.port != 0
    except ValueError:  # a bad port
        ok = False
    if not ok:
        raise val.fail(f"{path}.url", "must be an http:// or https:// URL", url)
    d = Probe(url)
    return Probe(
        url=url,
        expect_status=val.optional(data, "expect_status", path, val.integer, d.expect_status, 100, 599),
        host=val.optional(data, "host", path, val.v.hostname, d.host),
        timeout_ms=val.optional(data, "timeout", path, val.duration, d.timeout_ms),
    )
