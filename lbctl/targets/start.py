"""How an operator starts a file target's process for lbctl (docs/running.md):
apply quotes it when the process is not running."""

from __future__ import annotations

import shlex

from lbctl import config
from lbctl.targets.process import locate


def hint(target: config.Target) -> str:
    """``: <command> (docs/running.md)``, or nothing for a target lbctl does not run (bigip)."""
    return f": {command(target)} (docs/running.md)" if target.kind in ("haproxy", "nginx") else ""


def command(target: config.Target) -> str:
    """A shell command line that starts ``target``'s load balancer on its config."""
    binary = locate(target.binary)
    if target.kind == "haproxy":  # master-worker, with the master CLI lbctl reloads through
        argv = [binary, "-W", "-f", str(target.config), "-S", f"{target.master_socket},level,admin"]
        if target.master_log is None:
            return shlex.join(argv[:1] + ["-D"] + argv[1:])
        return f"{shlex.join(argv)} 2>>{shlex.quote(str(target.master_log))} </dev/null &"
    if target.main_config is not None:  # nginx with lbctl's file included from the operator's
        return shlex.join([binary, "-c", str(target.main_config)])
    return shlex.join([binary, "-c", str(target.config), "-e", target.options.error_log])
