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
from lbctl.ui import live, server
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
        ui = operator_page(ctl, address, first.config.ui_auth)
        try:
            StatusServer(address, ctl.metrics, ctl.alive, ctl.ready, ui)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
        log.info("serving /metrics, /healthz and /readyz on http://%s:%d%s", *address,
                 "" if ui.off else ", the operator page on / and /api/v1/status")
    signal.signal(signal.SIGTERM, ctl.request_stop)
    signal.signal(signal.SIGINT, ctl.request_stop)
    signal.signal(signal.SIGHUP, ctl.request_reload)
    ctl.run()


def operator_page(ctl: controller.Controller, address: tuple[str, int], auth) -> server.Page:
    """The operator page beside /metrics: off (403, one warning) on a non-loopback address
    without ``ui.auth``, where /metrics, /healthz, /readyz and /vrrp go on unauthenticated.

    :raises ConfigError: ``ui.auth``'s secret cannot be read.
    """
    reader = live.Reader(lambda: page_state(ctl))
    if auth is None and not server.loopback(address[0]):
        off = (f"the operator page is off on {address[0]}:{address[1]}: a non-loopback address needs ui.auth in "
               "lbctl.yml (a token or a user and password)")
        log.warning("%s; /metrics, /healthz, /readyz and /vrrp are served without it", off)
        return server.Page(reader, None, off)
    return server.Page(reader, server.auth_for(address, auth))


def page_state(ctl: controller.Controller) -> live.State:
    """What the controller knows now, for the page: references to immutable parts and copies
    (no lock: each attribute is read once, and the model is never changed in place)."""
    setup, built, watcher, election = getattr(ctl, "setup", None), ctl.built, ctl.watcher, ctl.election
    if setup is None:
        return live.State(None)
    return live.State(built[0] if built else ctl.applied, tuple(setup.targets), frozenset(setup.static),
                      frozenset(ctl.pools) if watcher is not None else frozenset(),
                      setup.audit.path if setup.audit else None, ctl.metrics.refused_routes, dict(ctl.refusals),
                      watcher.age() if watcher is not None else None,
                      "consul" if setup.consul is not None else "inventory",
                      election.leading if election is not None else None,
                      watcher.failing_checks if watcher is not None else None)
