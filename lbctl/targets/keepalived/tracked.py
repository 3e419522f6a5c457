"""Which process keepalived's ``vrrp_track_process`` watches: the load balancer that
``check_target`` names (docs/high-availability.md#a-dead-load-balancer).

keepalived learns of every process start and exit from the kernel (the proc
connector) and matches a process by its name (``/proc/PID/comm``) or, given
parameters, by its command line: the program exactly as started, then those
parameters as its first ones (``param_match partial``).  The load balancer's own
configuration file in its command line tells it from any other on the host.  Pure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# How each kind's main process is started by its Debian service, as far as it identifies it.
# nginx rewrites its master's command line ("nginx: master process ..."), after
# keepalived has read it, and Apache's does not name its file: those go by name.
BY_NAME = {"nginx": "nginx", "apache": "apache2"}


def default(kind: str, binary: str, config: Path) -> tuple[str, ...]:
    """The words to track for a ``kind`` load balancer; () for a kind with no process of its own."""
    if kind == "haproxy":  # haproxy.service: /usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS
        return (shutil.which(binary) or binary, "-Ws", "-f", str(config))
    return (BY_NAME[kind],) if kind in BY_NAME else ()
