"""``lbctl check``: whether a load balancer on this node is fit to hold the virtual
IP (docs/high-availability.md#the-health-check).  keepalived runs it every
``check_interval`` as its ``vrrp_script``; exit 0 means fit.

Fit: its process runs, answers where lbctl.yml says (HAProxy's master socket,
nginx's pid file), has loaded the configuration file in place, runs no server
state that differs from it (drift), and its probes, if any, answer once.  It does
not ask the source: a file briefly behind a change in Consul is no reason to fail over.
"""

from __future__ import annotations

from lbctl.errors import LbctlError
from lbctl.targets import probes
from lbctl.targets.base import Restorable, Target


def problems(target: Target) -> list[str]:
    """What makes ``target`` unfit, one line each; none: fit.  Never raises."""
    try:
        if not target.running():
            return [f"{target.name}: not running{target.start_hint()}"]
        stale = target.stale()
        lines = [f"{target.name}: runs an older configuration than {target.location} ({stale})"] if stale else []
        lines += [f"{target.name}: drift: {line}" for line in
                  (target.drift() if isinstance(target, Restorable) else [])]
        settings = getattr(target, "settings", None)
        if not lines and settings is not None and settings.probes:
            probes.wait_healthy(settings.probes, successes=1, failures=1)
    except LbctlError as exc:
        return [f"{target.name}: {exc}" if not str(exc).startswith(f"{target.name}:") else str(exc)]
    return lines
