"""Kept-alive client connections at a planned switchover (docs/high-availability.md#planned-switchover-lbctl-drain-node).

VRRP moves addresses, not connections: a connection kept alive to the node that
gives a VIP up is reset by the node that takes it.  So before the VIPs move, the
node giving them up has its load balancer answer every response with
``Connection: close`` (``Target.keep_alive``), and waits until the connections
established to its VIPs at that moment are gone (at most ``drain_time``): each
client makes its next request on a new connection, which reaches whichever node
holds the VIP.  A node's load balancer keeps connections alive again when
keepalived makes it MASTER (``reopen``, from its notify).  ``lbctl drain-node``
does this on its own node; ``--restore`` asks the peers that hold the VIPs through
their ``lbctl watch`` (``POST <status_url>/handover``, ``hand_over`` there).
"""

from __future__ import annotations

import json
import time
import urllib.request

from lbctl.errors import LbctlError
from lbctl.targets import procfs
from lbctl.targets.keepalived import ctl
from lbctl.targets.keepalived.target import KeepalivedTarget

PEER_TIMEOUT = 2.0  # beyond a peer's drain_time: how long its answer may take


def close_connections(target: KeepalivedTarget) -> str:
    """Make the check target answer ``Connection: close`` and wait (at most ``drain_time``)
    until the connections established to this node's VIPs now are gone; what happened (never raises)."""
    lb = target.load_balancer()
    if lb is None:
        return "no check_target: kept-alive connections were not closed first"
    try:
        if not lb.keep_alive(False):
            return f"{lb.name} ({lb.kind}) cannot close kept-alive connections at runtime: not closed first"
    except LbctlError as exc:  # its load balancer down: the VIPs are gone already (FAULT)
        return f"{lb.name}: kept-alive connections not closed first: {exc}"
    vips = ctl.vips(_text(target))
    left = procfs.established(vips)
    deadline = time.monotonic() + target.settings.options.drain_time_ms / 1000
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left &= procfs.established(vips)
    if left:
        return (f"{len(left)} client connection(s) still open after drain_time "
                f"{target.settings.options.drain_time_ms / 1000:g}s (reset when the VIPs move)")
    return f"{lb.name} closed its client connections (Connection: close)"


def reopen(target: KeepalivedTarget) -> str:
    """Let the check target keep connections alive again; what happened (never raises)."""
    lb = target.load_balancer()
    try:
        if lb is not None and lb.keep_alive(True):
            return f"{lb.name} keeps connections alive again"
    except LbctlError as exc:
        return f"{lb.name}: could not let connections be kept alive again: {exc}"
    return ""


def hand_over(target: KeepalivedTarget, client: str) -> tuple[int, dict]:
    """``POST /vrrp/<target>/handover`` from a peer about to take the VIPs back: close this
    node's connections first.  Only a configured peer's address may ask (403 otherwise)."""
    if client not in {peer.address for peer in target.settings.options.peers}:
        return 403, {"error": f"{client} is not a peer of node {target.settings.options.node}"}
    return 200, {"node": target.settings.options.node, "message": close_connections(target)}


def ask_peers(target: KeepalivedTarget) -> list[str]:
    """Ask each peer with a ``status_url`` to close its connections (``hand_over``); what each said."""
    out = []
    for peer in target.settings.options.peers:
        if not peer.status_url:
            out.append(f"peer {peer.name} has no status_url: its kept-alive connections were not closed first")
            continue
        ask = urllib.request.Request(f"{peer.status_url}/handover", data=b"", method="POST")
        timeout = target.settings.options.drain_time_ms / 1000 + PEER_TIMEOUT
        try:
            with urllib.request.urlopen(ask, timeout=timeout) as answer:
                out.append(f"peer {peer.name}: {json.loads(answer.read())['message']}")
        except (OSError, ValueError, KeyError) as exc:
            out.append(f"peer {peer.name} could not close its connections first: "
                       f"{getattr(exc, 'reason', None) or exc}")
    return out


def _text(target: KeepalivedTarget) -> str:
    try:
        return target.path.read_text()
    except OSError:
        return ""
