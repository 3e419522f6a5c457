"""The ``lbctl`` command line: a thin layer over the library.

Exit codes: 0 success (``plan``: nothing would change), 1 any error (one line on
stderr, never a traceback), 2 ``plan`` found changes, 3 a rollback failed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from lbctl import __version__, kinds
from lbctl.console import (ALL_KINDS_HELP, FILE_KINDS_HELP, LbctlGroup, exit_now, force_options, format_option,
                           one_shot, remember_verbose, source_options, status_text, target_options, target_status,
                           verbose_option, with_options)
from lbctl.errors import ConfigError, LbctlError
from lbctl.session import Session, guard_policy, inventory_desired, session_text, text_format

# Each command imports what it uses: ``lbctl render`` of 100,000 servers should not
# pay for loading the targets' control code, deploy, Consul, BIG-IP, metrics or the
# watch loop, nor json (the --json outputs import it), nor ``lbctl --help`` for Jinja2
# (tests/unit/test_cli_imports.py); a render from saved patterns not even Jinja2 (lbctl/render/warm.py).
EXIT_CHANGES = 2


@click.group(cls=LbctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lbctl")
def cli() -> None:
    """Keep HAProxy, Nginx, Apache httpd and F5 BIG-IP in step with an inventory or Consul."""


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
        text = render_config(inventory_desired(inventory_path), target_name, options, template_dir, reuse=True)
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
        import json

        click.echo(json.dumps({"changed": any(o["result"] != "unchanged" for o in outcomes), "targets": outcomes}))


@cli.command()
@source_options(None)
@click.option("--force", is_flag=True, help="Apply changes the removal guard would refuse.")
@click.option("-v", "--verbose", is_flag=True, callback=remember_verbose,
              help="Log every step, not only changes and problems.")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", help="Log lines for people or JSON.")
@click.option("--listen", help="Serve /metrics, /healthz, /readyz and the operator page (/, /api/v1/status) on HOST:PORT (default: metrics.listen).")
def watch(config_path, inventory_path, target_name, template_dir, force, verbose, log_format, listen) -> None:
    """Keep the targets in step with the source until SIGTERM (SIGHUP re-reads the config)."""
    from lbctl.watch import daemon

    daemon.run((config_path, inventory_path, target_name, template_dir), force, verbose, log_format, listen)
    click.echo("lbctl: watch stopped", err=True)


@cli.command()
@target_options
@click.option("--to", "backup_id", help="The backup to restore (default: the newest).")
@with_options(force_options)
@verbose_option
def rollback(config_path, target_name, backup_id, force, allow) -> None:
    """Restore a backup through the same check, reload and verify path."""
    from lbctl import deploy

    session = Session.configured(config_path, target_name)
    target = deploy.restorable(session.target(session.single()))
    backup = target.backup(backup_id)
    outcome = deploy.deploy(target, candidate=backup.read_bytes().decode(), action="rollback",
                            policy=guard_policy(session, force, allow))
    click.echo(f"{outcome.message} (restored backup {backup.id})" if outcome.result != "unchanged"
               else f"{target.name}: backup {backup.id} is already live")


@cli.command()
@target_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--routes", "with_routes", is_flag=True, help="Also list every route and the refused ones "
              "(as lbctl routes; reads Consul once).")
@verbose_option
def status(config_path, target_name, as_json, with_routes) -> None:
    """Per target: the live config's hash, the last apply, the backups, the process,
    drift and a change the guard refused; with --routes, the routes and their conflicts.
    Exits 1 if a process runs but cannot be reached."""
    session = Session.configured(config_path, target_name)
    states = [target_status(session.target(t)) for t in session.selected]
    table, refused = session.routes() if with_routes else ([], [])
    if as_json:
        import json

        click.echo(json.dumps({"targets": states, "routes": table, "refused": [r.text() for r in refused]}
                              if with_routes else states, indent=1))
    else:
        for s in states:
            click.echo(status_text(s))
        if with_routes:
            click.echo(route_lines(table, refused), nl=False)
    unreachable = [s["target"] for s in states if s["process"].get("reachable") is False]
    if unreachable:
        raise LbctlError(f"cannot reach the running {', '.join(unreachable)} (see the process line)")


@cli.command()
@source_options(None)
@click.option("--json", "as_json", is_flag=True, help='Print {"routes": [...], "refused": [...]} instead of lines.')
@verbose_option
def routes(config_path, inventory_path, target_name, template_dir, as_json) -> None:
    """List every route (listener, host/path, pool, source: inventory or service) in the
    order targets render them, then the routes services declare that are refused."""
    from dataclasses import asdict

    any_kind = None if config_path else "haproxy"  # the routes are the same for every target
    table, refused = Session(config_path, inventory_path, target_name or any_kind, template_dir).routes()
    if as_json:
        import json

        click.echo(json.dumps({"routes": table, "refused": [{**asdict(r), "conflict": r.conflict} for r in refused]},
                              indent=1))
        return
    click.echo(route_lines(table, refused), nl=False)


def route_lines(table: list[dict], refused: list) -> str:
    """``lbctl routes`` as text: one aligned line per route, then one per refused route."""
    rows = [("LISTENER", "ROUTE", "POOL", "SOURCE")] + [(r["listener"], r["route"], r["pool"], r["source"]) for r in table]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[3]]) + "\n" for row in rows]
    out += [f"{'conflict' if r.conflict else 'refused'}: {r.text()}\n" for r in refused]
    return "".join(out)


@cli.command()
@target_options
@click.option("--listen", default="127.0.0.1:9106", show_default=True,
              help="Serve the page on HOST:PORT (off loopback only with ui.auth in lbctl.yml).")
@verbose_option
def ui(config_path, target_name, listen) -> None:
    """Serve the operator page (and /api/v1/status) for the config's targets until Ctrl-C,
    without lbctl watch: the source is read again at most every few seconds."""
    from lbctl.config import values
    from lbctl.ui import oneshot

    oneshot.run(Session.configured(config_path, target_name), values.host_port(listen, "--listen"))


@cli.command()
@target_options
@verbose_option
def approve(config_path, target_name) -> None:
    """Let the change the removal guard refused last through, once (lbctl watch
    applies it within a second; lbctl apply applies it on its next run)."""
    from lbctl.targets.state import TargetState

    session = Session.configured(config_path, target_name)
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
@target_options
@verbose_option
def reload(config_path, target_name) -> None:
    """Check the configuration file in place and make the running load balancer load it."""
    from lbctl import deploy

    session = Session.configured(config_path, target_name)
    click.echo(deploy.reload_in_place(session.target(session.single())).message)


@cli.command()
@target_options
@verbose_option
def check(config_path, target_name) -> None:
    """Exit 0 if the target's load balancer runs, answers, serves the configuration in
    place without drift and passes its probes (keepalived's health check)."""
    from lbctl.targets import health

    session = Session.configured(config_path, target_name)
    problems = []
    for t in session.selected:
        target = session.target(t)
        found = health.problems(target)
        # keepalived drops stderr; "checked": how recent (lbctl drain-node asks the peer's)
        target.state.keep("check.json", {"fit": not found, "problems": found, "checked": round(time.time(), 3)},
                          durable=False)
        problems += found
    if problems:
        raise LbctlError("; ".join(problems))
    click.echo(f"{', '.join(t.name for t in session.selected)}: fit to serve")


def keepalived_target(config_path, target_name):
    """The keepalived target named, and the session.  :raises ConfigError: it is of another kind."""
    session = Session.configured(config_path, target_name)
    t = session.single()
    if t.kind != "keepalived":
        raise ConfigError(f"{t.name}: a {t.kind} target; this command takes a keepalived target")
    return session, session.target(t)


@cli.command("vrrp-notify", hidden=True)
@target_options
@click.argument("event", nargs=-1)
def vrrp_notify(config_path, target_name, event) -> None:
    """keepalived's notify hook: record VRRP state changes (status, metrics, audit log);
    EVENT is ``INSTANCE NAME STATE PRIORITY``, or keepalived's notify FIFO to follow."""
    session, target = keepalived_target(config_path, target_name)
    pair = kinds.get("keepalived").module("pair")
    audit = None
    if session.config.audit_log:
        from lbctl.audit import AuditLog

        audit = AuditLog(session.config.audit_log)

    def record(entry: dict) -> None:
        if audit is not None:
            audit(entry)
        click.echo(entry["message"], err=True)

    if len(event) == 1:
        pair.follow(target, Path(event[0]), record)
    else:
        record(pair.notified(target, event))


@cli.command("drain-node")
@target_options
@click.option("--restore", is_flag=True, help="Undo a drain: put this node's priority back.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for a peer to take the virtual IPs (or, --restore, for them to come back).")
@verbose_option
def drain_node(config_path, target_name, restore, timeout) -> None:
    """Planned switchover: lower this node's VRRP priority and wait until a peer holds the virtual IPs."""
    _session, target = keepalived_target(config_path, target_name)
    pair = kinds.get("keepalived").module("pair")
    click.echo(pair.restore(target, timeout) if restore else pair.drain(target, timeout))


def main(argv: list[str] | None = None) -> None:
    """The console script: like click's standalone mode, but a usage error exits 1,
    so that 2 keeps meaning "plan found changes".  As the process's entry point (no
    ``argv``), a one-shot command that succeeded ends the process at once (``exit_now``)."""
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
    if argv is None and one_shot.done:
        exit_now()
    sys.exit(0)
