"""What one command works on: the config (if any), the inventory or Consul, and
the selected targets, each wired to its renderer and the audit log.  The command
line (cli.py) and ``lbctl watch`` (watch/daemon.py) build their work from a
``Session``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lbctl import kinds
from lbctl.errors import ConfigError

if TYPE_CHECKING:
    from lbctl import config, guard, inventory
    from lbctl.targets.base import Target


AS3_MOVED = "-t as3 is now --format as3 of a bigip target: lbctl render -t <bigip target, or bigip> --format as3"


def text_format(t: config.Target, fmt: str | None) -> str:
    """``--format``, or the first format of ``t``'s kind.  :raises ConfigError: not one of its kind's."""
    formats = kinds.get(t.kind).formats
    if fmt is not None and fmt not in formats:
        raise ConfigError(f"{t.name}: a {t.kind} target renders --format {kinds.named(formats)} (got {fmt!r})")
    return fmt or formats[0]


def guard_policy(session: Session, force: bool = False, allow: tuple[str, ...] = ()) -> guard.Policy:
    """The config's guard limits with the command's --force and --allow-removal."""
    names = frozenset(n for item in allow for n in item.split(",") if n)
    return replace(session.config.guard, force=force, allow=names)


def inventory_desired(path: Path | None, how: str = "load"):
    """The model of the inventory at ``path`` (``how="load_parts"``: its ``inventory.Parts``)."""
    if path is None:
        raise ConfigError("no inventory: pass -i FILE or set source.inventory in the config")
    from lbctl import inventory

    return getattr(inventory, how)(path)


class Session:
    """What one command works on: the config (if any), the inventory, the targets."""

    def __init__(self, config_path: Path | None, inventory_path: Path | None, target_name: str | None,
                 template_dir: str | None, need_config: bool = False) -> None:
        if config_path:
            from lbctl import config

            self.config = config.load(config_path)
        else:
            self.config = None
        if need_config and self.config is None:
            raise ConfigError("this command needs a config: pass --config lbctl.yml or set LBCTL_CONFIG")
        self.inventory_path = inventory_path or (self.config.inventory if self.config else None)
        self.template_dir = template_dir or (self.config.templates if self.config else None)
        self.selected = self._select(target_name)

    @classmethod
    def configured(cls, config_path: Path | None, target_name: str | None) -> Session:
        """The session of a command that works on a config's targets (status, rollback, ...)."""
        return cls(config_path, None, target_name, None, need_config=True)

    def _select(self, name: str | None) -> list[config.Target]:
        from lbctl import config

        if name == "as3" and (self.config is None or name not in self.config.targets):
            raise ConfigError(AS3_MOVED)
        if self.config is None:
            if name not in kinds.KINDS:
                raise ConfigError(f"-t must be one of {', '.join(kinds.KINDS)} without a config (got {name!r})")
            return [config.without_config(name)]
        if name is None:
            if not self.config.targets:
                raise ConfigError(f"{self.config.path}: no targets defined")
            return list(self.config.targets.values())
        if name in kinds.KINDS and not kinds.get(name).file and name not in self.config.targets:
            # a device kind: the settings of the config's target of that kind, if there is one
            found = [t for t in self.config.targets.values() if t.kind == name]
            if len(found) > 1:
                raise ConfigError(f"{self.config.path}: several {name} targets: name one with -t")
            return found or [config.without_config(name)]
        if name not in self.config.targets:
            raise ConfigError(f"{self.config.path}: no target named {name!r} (have: {', '.join(self.config.targets)})")
        return [self.config.targets[name]]

    def single(self) -> config.Target:
        if len(self.selected) != 1:
            raise ConfigError(f"choose a target with -t ({', '.join(t.name for t in self.selected)})")
        return self.selected[0]

    def desired(self):
        if self.config is not None and self.config.consul is not None:
            return self.consul_desired()
        return inventory_desired(self.inventory_path)

    def parts(self) -> inventory.Parts:
        """The inventory that discovered pools plug into (none: no listeners, pools only)."""
        from lbctl import inventory

        return inventory.load_parts(self.inventory_path) if self.inventory_path else inventory.parts({})

    def consul_entries(self) -> tuple[dict, list[str]]:
        """One reading of every watched service, without blocking, and the problems found."""
        from lbctl.discovery import consul as consul_client

        client = consul_client.Client(self.config.consul)
        try:
            return consul_client.snapshot(client)
        finally:
            client.close()

    def routes(self) -> tuple[list[dict], list]:
        """Every route (``discovery.routes.table``) and the routes services declare that are
        refused (``Refusal``s), from the inventory and one reading of Consul."""
        from lbctl.discovery import routes

        refused: list = []
        if self.config is not None and self.config.consul is not None:
            listeners = self.consul_desired(refused).listeners
        else:
            listeners = (self.parts() if self.config is not None else inventory_desired(self.inventory_path, "load_parts")).listeners
        return routes.table(listeners), refused

    def consul_desired(self, refused: list | None = None):
        """One reading of Consul, without blocking, for the one-shot commands (``refused``:
        given, the routes refused go there, and are not warned about)."""
        settings = self.config.consul
        from lbctl.discovery import consul_model, merge

        entries, problems = self.consul_entries()
        desired, found = merge.from_entries(self.parts(), entries, consul_model.Policy(settings.include_warning),
                                            refused)
        shown = {r.text() for r in refused or ()}
        for text in problems + found:
            if text not in shown:
                click.echo(f"lbctl: warning: {text}", err=True)
        return desired

    def renderer(self, settings_: config.Target):
        from lbctl.render import render as render_config

        return lambda desired, **kw: render_config(desired, settings_.kind, settings_.options, self.template_dir, **kw)

    def target(self, settings_: config.Target) -> Target:
        if self.config is None and not kinds.get(settings_.kind).file:
            raise ConfigError(f"-t {settings_.kind}: without a config, only render and validate take a "
                              f"{settings_.kind} (--format {kinds.named(kinds.get(settings_.kind).formats)})")
        target = kinds.get(settings_.kind).target()(settings_, self.renderer(settings_))
        if hasattr(target, "siblings") and self.config is not None:  # keepalived: the files it compares with its peers'
            target.siblings = {t.name: t for t in self.config.targets.values()
                               if t.config is not None and t.kind != settings_.kind}
            target.make_target = self.target  # drain-node: its check target's runtime (keep-alive)
        if self.config is not None and self.config.audit_log:
            from lbctl.audit import AuditLog

            target.state.listeners.append(AuditLog(self.config.audit_log))
        return target


def session_text(session: Session, fmt: str | None) -> str:
    """What apply would write for the one selected target, or the text of another of its formats."""
    t = session.single()
    fmt = text_format(t, fmt)
    if fmt != kinds.CONFIG_FORMAT:  # e.g. a bigip's AS3 declaration of the model alone: no device is asked
        return kinds.get(t.kind).module(fmt).text(session.desired(), t.options)
    return session.target(t).plan(session.desired()).candidate
