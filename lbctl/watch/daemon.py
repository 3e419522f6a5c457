"""Runs ``lbctl watch``: logs, the status server, signals, and the controller fed
with a fresh ``Session`` on every start and SIGHUP."""

from __future__ import annotations

import logging
import resource
import signal

from lbctl.config import values
from lbctl.console import ONE_SHOT_LOG
from lbctl.errors import ConfigError
from lbctl.session import Session
from lbctl.watch import controller, logs
from lbctl.watch.metrics import StatusServer

log = logging.getLogger("lbctl.watch")


def setup(session: Session) -> controller.Setup:
    """What the controller works on, read from the session's config and inventory."""
    from lbctl.audit import AuditLog

    config = session.config
    audit = AuditLog(config.audit_log) if config.audit_log else None
    return controller.Setup(session.parts(), [session.target(t) for t in session.selected], config.watch,
                            config.consul, config.election, audit, config.guard, session.inventory_path)


def run(args: tuple, force: bool, verbose: bool, log_format: str, listen: str | None) -> None:
    """Keep the targets of ``Session(*args)`` in step until SIGTERM or SIGINT; SIGHUP re-reads."""
    logging.getLogger("lbctl").removeHandler(ONE_SHOT_LOG)
    logging.getLogger("lbctl").setLevel(logging.NOTSET)
    logs.setup(log_format, verbose)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # HAProxy's sockets, Consul connections, backups: room for all
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    first = Session(*args, need_config=True)  # fail now, with one line, on a bad config
    ctl = controller.Controller(lambda: setup(Session(*args, need_config=True)), force=force)
    address = values.host_port(listen, "--listen") if listen else first.config.metrics_listen
    if address is not None:
        try:
            StatusServer(address, ctl.metrics, ctl.alive, ctl.ready)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
        log.info("serving /metrics, /healthz and /readyz on http://%s:%d", *address)
    signal.signal(signal.SIGTERM, ctl.request_stop)
    signal.signal(signal.SIGINT, ctl.request_stop)
    signal.signal(signal.SIGHUP, ctl.request_reload)
    ctl.run()
