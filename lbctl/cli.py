"""The ``lbctl`` command line: a thin layer over the library.

Exit codes: 0 success (``plan``: nothing would change), 1 any error (one line on
stderr, never a traceback), 2 ``plan`` found changes, 3 a rollback failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lbctl import __version__, kinds
from lbctl.console import (ALL_KINDS_HELP, FILE_KINDS_HELP, ONE_SHOT_LOG, LbctlGroup, config_option, force_options,
                           format_option, one_shot, remember_verbose, source_options, status_text, target_option,
                           target_status, verbose_option, with_options)
from lbctl.errors import ConfigError, LbctlError

if TYPE_CHECKING:
    from lbctl import config, guard, inventory
    from lbctl.targets.base import Target

# Each command imports what it uses: ``lbctl render`` of 100,000 servers should not
# pay for loading the targets' control code, deploy, Consul, BIG-IP, metrics or the
# watch loop, nor ``lbctl --help`` for Jinja2 (tests/unit/test_cli_imports.py).
EXIT_CHANGES = 2


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


def inventory_desired(path: Path | None):
    if path is None:
        raise ConfigError("no inventory: pass -i FILE or set source.inventory in the config")
    from lbctl import inventory

    return inventory.load(path)


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

    def consul_desired(self):
        """One reading of Consul, without blocking, for the one-shot commands."""
        settings = self.config.consul
        from lbctl.discovery import consul as consul_client, consul_model, merge

        client = consul_client.Client(settings)
        try:
            entries, problems = consul_client.snapshot(client)
        finally:
            client.close()
        desired, found = merge.from_entries(self.parts(), entries, consul_model.Policy(settings.include_warning))
        for text in problems + found:
            click.echo(f"lbctl: warning: {text}", err=True)
        return desired

    def setup(self):
        from lbctl import controller
        from lbctl.audit import AuditLog

        audit = AuditLog(self.config.audit_log) if self.config.audit_log else None
        return controller.Setup(self.parts(), [self.target(t) for t in self.selected], self.config.watch,
                                self.config.consul, self.config.election, audit, self.config.guard,
                                self.inventory_path)

    def renderer(self, settings_: config.Target):
        from lbctl.render import render as render_config

        return lambda desired, **kw: render_config(desired, settings_.kind, settings_.options, self.template_dir, **kw)

    def target(self, settings_: config.Target) -> Target:
        if self.config is None and not kinds.get(settings_.kind).file:
            raise ConfigError(f"-t {settings_.kind}: without a config, only render and validate take a "
                              f"{settings_.kind} (--format {kinds.named(kinds.get(settings_.kind).formats)})")
        target = kinds.get(settings_.kind).target()(settings_, self.renderer(settings_))
        if self.config is not None and self.config.audit_log:
            from lbctl.audit import AuditLog

            target.state.listeners.append(AuditLog(self.config.audit_log))
        return target


@click.group(cls=LbctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lbctl")
def cli() -> None:
    """Keep HAProxy, Nginx and F5 BIG-IP in step with an inventory or Consul."""


def session_text(session: Session, fmt: str | None) -> str:
    """What apply would write for the one selected target, or the text of another of its formats."""
    t = session.single()
    fmt = text_format(t, fmt)
    if fmt != kinds.CONFIG_FORMAT:  # e.g. a bigip's AS3 declaration of the model alone: no device is asked
        return kinds.get(t.kind).module(fmt).text(session.desired(), t.options)
    return session.target(t).plan(session.desired()).candidate


@cli.command()
@source_options(ALL_KINDS_HELP)
@format_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the configuration to this file (atomically) instead of stdout.")
@verbose_option
@one_shot
def render(config_path, inventory_path, target_name, template_dir, fmt, output) -> None:
    """Print the complete configuration for a target."""
    if config_path is None and target_name in kinds.FILE_KINDS and fmt in (None, kinds.CONFIG_FORMAT):
        # a kind's packaged settings: no config, no target to load
        from lbctl.render import render as render_config

        options = kinds.get(target_name).settings().options(None, "options")
        text = render_config(inventory_desired(inventory_path), target_name, options, template_dir)
    else:
        text = session_text(Session(config_path, inventory_path, target_name, template_dir), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    from lbctl.targets.files import atomic_write

    atomic_write(output, text)
    click.echo(f"wrote {output}", err=True)


@cli.command()
@source_options(ALL_KINDS_HELP)
@format_option
@click.option("--binary", help=f"The {FILE_KINDS_HELP} binary to check with (default: from the config or PATH).")
@verbose_option
@one_shot
def validate(config_path, inventory_path, target_name, template_dir, fmt, binary) -> None:
    """Render, then run the target's own check (haproxy -c, nginx -t) on the result.

    --format as3 checks a bigip target's AS3 declaration against the AS3 schema instead."""
    import tempfile

    from lbctl import guard
    from lbctl.targets import check as checks

    session = Session(config_path, inventory_path, target_name, template_dir)
    desired = session.desired()
    if guard.served(desired).empty:
        raise ConfigError(f"{session.inventory_path or 'the source'}: nothing to serve (no listeners, no pools); "
                          "lbctl apply refuses an empty model without --force")
    for t in session.selected:
        t = replace(t, binary=binary) if binary else t
        chosen = text_format(t, fmt)
        if chosen != kinds.CONFIG_FORMAT and (fmt is not None or session.config is None):
            kinds.get(t.kind).module(chosen).validate(desired, t.options)
        elif session.config is not None:
            target = session.target(t)
            change = target.plan(desired)
            target.check(change)
            for problem in guard.refusals(*target.served_change(change), session.config.guard):
                click.echo(f"lbctl: warning: {t.name}: apply would refuse this change: {problem}", err=True)
        else:
            with tempfile.TemporaryDirectory(prefix="lbctl-validate-") as tmp:
                candidate = Path(tmp) / kinds.get(t.kind).config_name
                candidate.write_text(session.renderer(t)(desired))
                checks.check(t.kind, candidate, t.binary)
        click.echo(f"{session.inventory_path}: the {t.name} configuration is valid")


@cli.command()
@source_options(FILE_KINDS_HELP)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="The configuration file to compare with (default: the target's config).")
@verbose_option
@one_shot
def plan(config_path, inventory_path, target_name, template_dir, output) -> None:
    """Show what would change, as a unified diff.

    Exits 0 when nothing would change, 2 when something would, 1 on error.
    """
    session = Session(config_path, inventory_path, target_name, template_dir)
    if output is None and session.config is None:
        raise ConfigError("plan needs -o FILE (the file in place) or a config naming the target's file")
    from lbctl.targets.base import Restorable, RuntimeChanges

    desired = session.desired()
    changed = False
    for t in session.selected if output is None else [session.single()]:
        target = session.target(replace(t, config=output) if output else t)
        # A watch keeps the lock until its file write: compare with a file that matches what runs.
        with target.state.lock() if output is None else contextlib.nullcontext():
            change = target.plan(desired)
        if change.noop:
            click.echo(f"{target.location}: no changes")
        else:
            changed = True  # a device (BIG-IP): the semantic diff (pools, members, monitors), one line each
            click.echo(change.diff(target.location) if kinds.get(target.kind).file
                       else "".join(f"{line}\n" for line in change.summary), nl=False)
        if output is None and isinstance(target, Restorable):  # what runs vs the file in place
            for line in target.drift():
                click.echo(f"{target.name}: drift: {line}")
            drifted = isinstance(target, RuntimeChanges) and target.runtime_drifted
            changed = changed or drifted or bool(target.stale())  # apply would repair
    if changed:
        sys.exit(EXIT_CHANGES)


@cli.command()
@source_options(None)
@click.option("--json", "as_json", is_flag=True,
              help='Print {"changed": ..., "targets": [{"target", "result", "message"}]} instead of lines.')
@with_options(force_options)
@verbose_option
def apply(config_path, inventory_path, target_name, template_dir, as_json, force, allow) -> None:
    """Render, check, swap atomically, reload and verify; roll back on any failure."""
    from lbctl import deploy

    session = Session(config_path, inventory_path, target_name, template_dir, need_config=True)
    desired = session.desired()
    policy = guard_policy(session, force, allow)
    outcomes = []
    for t in session.selected:
        outcome = deploy.deploy(session.target(t), desired, policy=policy)
        outcomes.append({"target": outcome.target, "result": outcome.result, "message": outcome.message})
        if not as_json:
            click.echo(outcome.message)
    if as_json:
        click.echo(json.dumps({"changed": any(o["result"] != "unchanged" for o in outcomes), "targets": outcomes}))


@cli.command()
@source_options(None)
@click.option("--force", is_flag=True, help="Apply changes the removal guard would refuse.")
@click.option("-v", "--verbose", is_flag=True, callback=remember_verbose,
              help="Log every step, not only changes and problems.")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", help="Log lines for people or JSON.")
@click.option("--listen", help="Serve /metrics, /healthz and /readyz on HOST:PORT (default: metrics.listen).")
def watch(config_path, inventory_path, target_name, template_dir, force, verbose, log_format, listen) -> None:
    """Keep the targets in step with the source until SIGTERM (SIGHUP re-reads the config)."""
    import resource
    import signal

    from lbctl import logs
    from lbctl.config import values

    logging.getLogger("lbctl").removeHandler(ONE_SHOT_LOG)
    logging.getLogger("lbctl").setLevel(logging.NOTSET)
    logs.setup(log_format, verbose)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # HAProxy's sockets, Consul connections, backups: room for all
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = (config_path, inventory_path, target_name, template_dir)
    first = Session(*args, need_config=True)  # fail now, with one line, on a bad config
    from lbctl import controller
    from lbctl.metrics import StatusServer

    ctl = controller.Controller(lambda: Session(*args, need_config=True).setup(), force=force)
    address = values.host_port(listen, "--listen") if listen else first.config.metrics_listen
    if address is not None:
        try:
            StatusServer(address, ctl.metrics, ctl.alive, ctl.ready)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
        logging.getLogger("lbctl.watch").info("serving /metrics, /healthz and /readyz on http://%s:%d", *address)
    signal.signal(signal.SIGTERM, ctl.request_stop)
    signal.signal(signal.SIGINT, ctl.request_stop)
    signal.signal(signal.SIGHUP, ctl.request_reload)
    ctl.run()
    click.echo("lbctl: watch stopped", err=True)


@cli.command()
@config_option
@target_option
@click.option("--to", "backup_id", help="The backup to restore (default: the newest).")
@with_options(force_options)
@verbose_option
def rollback(config_path, target_name, backup_id, force, allow) -> None:
    """Restore a backup through the same check, reload and verify path."""
    from lbctl import deploy

    session = Session(config_path, None, target_name, None, need_config=True)
    target = deploy.restorable(session.target(session.single()))
    backup = target.backup(backup_id)
    outcome = deploy.deploy(target, candidate=backup.read_bytes().decode(), action="rollback",
                            policy=guard_policy(session, force, allow))
    click.echo(f"{outcome.message} (restored backup {backup.id})" if outcome.result != "unchanged"
               else f"{target.name}: backup {backup.id} is already live")


@cli.command()
@config_option
@target_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@verbose_option
def status(config_path, target_name, as_json) -> None:
    """Per target: the live config's hash, the last apply, the backups, the process,
    drift and a change the guard refused.  Exits 1 if a process runs but cannot be reached."""
    session = Session(config_path, None, target_name, None, need_config=True)
    states = [target_status(session.target(t)) for t in session.selected]
    if as_json:
        click.echo(json.dumps(states, indent=1))
    else:
        for s in states:
            click.echo(status_text(s))
    unreachable = [s["target"] for s in states if s["process"].get("reachable") is False]
    if unreachable:
        raise LbctlError(f"cannot reach the running {', '.join(unreachable)} (see the process line)")


@cli.command()
@config_option
@target_option
@verbose_option
def approve(config_path, target_name) -> None:
    """Let the change the removal guard refused last through, once (lbctl watch
    applies it within a second; lbctl apply applies it on its next run)."""
    from lbctl.targets.state import TargetState

    session = Session(config_path, None, target_name, None, need_config=True)
    approved = []
    for t in session.selected:
        state = TargetState(t.state_dir, t.name, 0)
        refused = state.refused()
        if refused and refused.get("candidate"):
            state.approve(refused["candidate"])
            approved.append(t.name)
            click.echo(f"{t.name}: approved the change refused at {refused['time']}: {refused['message']}")
    if not approved:
        raise ConfigError(f"no refused change to approve for {', '.join(t.name for t in session.selected)}")


@cli.command()
@config_option
@target_option
@verbose_option
def reload(config_path, target_name) -> None:
    """Check the configuration file in place and make the running load balancer load it."""
    from lbctl import deploy

    session = Session(config_path, None, target_name, None, need_config=True)
    click.echo(deploy.reload_in_place(session.target(session.single())).message)


def main(argv: list[str] | None = None) -> None:
    """The console script: like click's standalone mode, but a usage error exits 1,
    so that 2 keeps meaning "plan found changes"."""
    try:
        cli.main(args=argv, prog_name="lbctl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("lbctl: aborted", err=True)
        sys.exit(1)
    sys.exit(0)
