"""The plumbing of the command line: every error as one line and an exit code
(``-v`` adds the traceback of an unexpected one), secrets masked in everything on
stdout and stderr, the log lines of one-shot commands on stderr, the options
several commands share, and ``lbctl status``'s text."""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from pathlib import Path

import click

from lbctl import kinds, redact
from lbctl.errors import LbctlError


class LbctlGroup(click.Group):
    """Turns every error into one line on stderr and an exit code: an ``LbctlError``
    its own, any other exception 1 (``-v`` adds the traceback).  Log lines of
    one-shot commands go to stderr as ``lbctl: ...`` (``watch`` sets up its own)."""

    def invoke(self, ctx: click.Context):
        redact.guard_streams()  # no secret read from here on reaches stdout or stderr
        lbctl_log = logging.getLogger("lbctl")
        if ONE_SHOT_LOG not in lbctl_log.handlers:
            lbctl_log.addHandler(ONE_SHOT_LOG)
            lbctl_log.setLevel(logging.INFO)
        try:
            return super().invoke(ctx)
        except LbctlError as exc:
            fail(ctx, str(exc), exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(ctx, f"{where}{exc.strerror or exc}")
        except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
            fail(ctx, f"unexpected {type(exc).__name__}: {exc} (please report this; -v shows the traceback)")


def fail(ctx: click.Context, message: str, code: int = 1) -> None:
    if ctx.meta.get("lbctl.verbose"):
        click.echo(traceback.format_exc().rstrip(), err=True)
    click.echo(f"lbctl: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


class EchoHandler(logging.Handler):
    """Log lines of one-shot commands: ``lbctl: warning: ...`` on stderr (whatever
    stderr is at the time: click's test runner swaps it), secrets masked."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        click.echo(redact.mask(f"lbctl: {level}{record.getMessage()}"), err=True)


ONE_SHOT_LOG = EchoHandler()


def remember_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    ctx.meta["lbctl.verbose"] = ctx.meta.get("lbctl.verbose") or value
    return value


verbose_option = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=remember_verbose,
                              help="On an unexpected error, print the traceback too.")


def status_text(s: dict) -> str:
    last = s["last_apply"] or {}
    proc = s["process"]
    running = proc.get("summary") or (  # summary: a target without processes (bigip), or unreachable
        f"running, master {proc['master_pid']}, workers {proc['workers']}" if proc.get("running") else "not running")
    lines = [f"{s['target']} ({s['kind']}): {s['config']}",
             f"  sha256      {s['sha256'] or 'no file'}",
             f"  last apply  {last.get('time', 'never')} {last.get('result', '')} {last.get('message', '')}".rstrip(),
             f"  backups     {len(s['backups'])}{' (newest ' + s['backups'][0] + ')' if s['backups'] else ''}",
             f"  process     {running}"]
    lines += [f"  drift       {line}" for line in s["drift"]]
    if s["refused"]:
        lines.append(f"  refused     {s['refused']['time']} {s['refused']['message']}; "
                     f"lbctl approve -t {s['target']} lets it through once")
    return "\n".join(lines)


# -- options more than one command takes ------------------------------------------------

config_option = click.option(
    "-c", "--config", "config_path", envvar="LBCTL_CONFIG", type=click.Path(dir_okay=False, path_type=Path),
    help="lbctl.yml naming the source and the targets (default: $LBCTL_CONFIG).")
inventory_option = click.option(
    "-i", "--inventory", "inventory_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory file (YAML or JSON); default: the config's source.inventory.")


def target_option_for(kinds: str | None):
    """``-t``: a target of the config, or (``kinds``) a kind when there is no config."""
    return click.option("-t", "--target", "target_name", help="A target named in the config" + (
        f", or without a config a kind: {kinds}." if kinds else "."))


target_option = target_option_for(None)
FILE_KINDS_HELP = kinds.named(kinds.FILE_KINDS)
ALL_KINDS_HELP = kinds.named(tuple(kinds.KINDS))
format_option = click.option(
    "--format", "fmt", type=click.Choice(sorted({fmt for kind in kinds.KINDS.values() for fmt in kind.formats})),
    help="What to print (default: the first of its kind's): " + "; ".join(
        f"{name} {', '.join(kind.formats)}" for name, kind in kinds.KINDS.items()) + ".")
templates_option = click.option(
    "--templates", "template_dir", type=click.Path(file_okay=False, exists=True),
    help="Directory of templates that override the packaged ones.")
force_options = [
    click.option("--force", is_flag=True, help="Apply a change the removal guard refuses (an empty model included)."),
    click.option("--allow-removal", "allow", multiple=True, metavar="NAME[,NAME]",
                 help="Let the guard pass removals from these pools or listeners (repeatable)."),
]


def with_options(options):
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def source_options(kinds: str | None):
    """The options every command that renders takes: --config, -i, -t (``kinds``: what
    it may name without a config), --templates."""
    return with_options([config_option, inventory_option, target_option_for(kinds), templates_option])


target_options = with_options([config_option, target_option])  # the commands that work on a config's targets


def one_shot(func):
    """A one-shot command builds a large acyclic model and exits: the cyclic garbage
    collector would only rescan it (a fifth of the time at 100,000 servers), and
    ``exit_now`` may end the process without tearing the model down."""
    def wrapper(*args, **kwargs):
        gc.disable()
        try:
            result = func(*args, **kwargs)
            one_shot.done = True
            return result
        finally:
            gc.enable()
    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


one_shot.done = False  # a one-shot command ran to its end in this process


def exit_now() -> None:
    """End the process with status 0 at once, once stdout, stderr and the log
    handlers are flushed: freeing the model of a one-shot command object by object
    costs about 40 ms of CPU at 100,000 servers.  Returns (for Python's own exit to
    report it) if the output cannot be flushed, e.g. a closed pipe."""
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(0)


def target_status(target) -> dict:
    state = target.status()
    state["refused"] = target.state.refused()
    try:
        state["drift"] = target.drift()
    except LbctlError:
        state["drift"] = []  # unreachable: the process line says so
    return state
