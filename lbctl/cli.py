"""The ``lbctl`` command line: a thin layer over the library.

Exit codes: 0 success (``plan``: nothing would change), 1 any error (one line on
stderr, never a traceback), 2 ``plan`` found changes, 3 a rollback failed.
"""

from __future__ import annotations

import difflib
import gc
import sys
import tempfile
from pathlib import Path

import click

from lbctl import __version__, inventory, settings
from lbctl.errors import LbctlError
from lbctl.render import KINDS, render as render_config
from lbctl.targets import check as checks
from lbctl.targets.files import atomic_write

EXIT_CHANGES = 2

inventory_option = click.option(
    "-i", "--inventory", "inventory_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Inventory file (YAML or JSON) with listeners, pools and members.")
kind_option = click.option(
    "-t", "--target", "kind", required=True, type=click.Choice(KINDS), help="What to render for.")
templates_option = click.option(
    "--templates", "template_dir", type=click.Path(file_okay=False, exists=True),
    help="Directory of templates that override the packaged ones.")


def rendered(inventory_path: Path, kind: str, template_dir: str | None) -> str:
    # A one-shot command builds a large acyclic model and exits: the cyclic
    # garbage collector would only rescan it (a fifth of the time at 100,000 servers).
    gc.disable()
    try:
        desired = inventory.load(inventory_path)
        return render_config(desired, kind, settings.options(kind), template_dir)
    finally:
        gc.enable()


class LbctlGroup(click.Group):
    """Turns every ``LbctlError`` into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LbctlError as exc:
            click.echo(f"lbctl: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=LbctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lbctl")
def cli() -> None:
    """Keep HAProxy and Nginx in step with your service inventory."""


@cli.command()
@inventory_option
@kind_option
@templates_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the configuration to this file (atomically) instead of stdout.")
def render(inventory_path: Path, kind: str, template_dir: str | None, output: Path | None) -> None:
    """Print the complete configuration for a target."""
    text = rendered(inventory_path, kind, template_dir)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            atomic_write(output, text)
        except OSError as exc:
            raise LbctlError(f"{output}: cannot write: {exc.strerror}") from None
        click.echo(f"wrote {output}", err=True)


@cli.command()
@inventory_option
@kind_option
@templates_option
@click.option("--binary", help="The haproxy or nginx binary to check with (default: from PATH).")
def validate(inventory_path: Path, kind: str, template_dir: str | None, binary: str | None) -> None:
    """Render, then run the target's own check (haproxy -c, nginx -t) on the result."""
    text = rendered(inventory_path, kind, template_dir)
    with tempfile.TemporaryDirectory(prefix="lbctl-validate-") as tmp:
        candidate = Path(tmp) / ("haproxy.cfg" if kind == "haproxy" else "nginx.conf")
        candidate.write_text(text)
        checks.CHECKS[kind](candidate, binary or kind)
    click.echo(f"{inventory_path}: the {kind} configuration is valid")


@cli.command()
@inventory_option
@kind_option
@templates_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The configuration file in place to compare with.")
def plan(inventory_path: Path, kind: str, template_dir: str | None, output: Path) -> None:
    """Show what would change in a configuration file, as a unified diff.

    Exits 0 when nothing would change, 2 when something would, 1 on error.
    """
    text = rendered(inventory_path, kind, template_dir)
    try:
        live = output.read_text() if output.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise LbctlError(f"{output}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if live == text:
        click.echo(f"{output}: no changes")
        return
    diff = difflib.unified_diff(live.splitlines(keepends=True), text.splitlines(keepends=True),
                                f"{output} (live)", f"{output} (rendered)")
    click.echo("".join(diff), nl=False)
    sys.exit(EXIT_CHANGES)


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
