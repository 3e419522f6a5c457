"""How an operator starts a file target's process for lbctl (docs/running.md):
apply quotes it when the process is not running.  Each file kind's command
line is its ``binary.start_command``."""

from __future__ import annotations

from lbctl import config, kinds


def hint(target: config.Target) -> str:
    """``: <command> (docs/running.md)``, or nothing for a target lbctl does not run (a device)."""
    return f": {command(target)} (docs/running.md)" if kinds.get(target.kind).file else ""


def command(target: config.Target) -> str:
    """A shell command line that starts ``target``'s load balancer on its config."""
    return kinds.get(target.kind).module("binary").start_command(target)
