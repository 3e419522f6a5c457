"""``lbctl ui``: the operator page for an lbctl.yml without ``lbctl watch``, until Ctrl-C.
The inventory or Consul is read again at most every ``REREAD_S`` seconds (a failed read
keeps the last good model, and the page says how old it is)."""

from __future__ import annotations

import signal
import threading
import time

import click

from lbctl.errors import LbctlError
from lbctl.session import Session
from lbctl.ui import live, server

REREAD_S = 5.0


def state_reader(session: Session, clock=time.monotonic):
    """A ``live.State`` maker for ``session``: the model re-read at most every ``REREAD_S``."""
    targets = tuple(session.target(t) for t in session.selected)
    consul = session.config.consul is not None
    last: dict = {"state": None, "at": None}

    def read(_key: object) -> live.State:
        refused: list = []
        try:
            parts = session.parts()
            desired = session.consul_desired(refused) if consul else session.desired()
        except LbctlError as exc:
            click.echo(f"lbctl: warning: {exc}; the page keeps the last model read", err=True)
            if last["state"] is None:
                return live.State(None, targets, audit_log=session.config.audit_log)
            return last["state"]
        last["at"] = clock()
        static = frozenset(parts.pools)
        last["state"] = live.State(desired, targets, static, frozenset(p.name for p in desired.pools) - static
                                   if consul else frozenset(), session.config.audit_log, tuple(refused),
                                   source="consul" if consul else "inventory")
        return last["state"]

    cached = live.Cached(read, REREAD_S, clock)

    def state() -> live.State:
        s = cached.get(None)
        age = None if last["at"] is None or not consul else clock() - last["at"]
        return live.State(s.desired, s.targets, s.static, s.discovered, s.audit_log, s.refused_routes,
                          data_age=age, source=s.source)

    return state


def run(session: Session, address: tuple[str, int]) -> None:
    """Serve the page on ``address`` until SIGINT or SIGTERM.  :raises ConfigError: as ``server.auth_for``."""
    auth = server.auth_for(address, session.config.ui_auth)
    page = server.Page(live.Reader(state_reader(session)), auth)
    try:
        httpd = server.Server(address, page)
    except OSError as exc:
        from lbctl.errors import ConfigError

        raise ConfigError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo(f"lbctl: serving the operator page on http://{address[0]}:{address[1]}/ "
               f"({'auth required' if auth else 'loopback only'}); Ctrl-C stops", err=True)
    stop.wait()
    httpd.shutdown()
