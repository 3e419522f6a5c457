"""The pair seen from one node: keepalived's notifications, a planned switchover
(``lbctl drain-node``) and what the peers say of themselves (``lbctl status``),
documented in docs/high-availability.md."""

from __future__ import annotations

import json
import shlex
import time
import urllib.request
from pathlib import Path
from typing import Callable

from lbctl.errors import ConfigError, LbctlError
from lbctl.targets.keepalived import ctl, handover
from lbctl.targets.keepalived.target import KeepalivedTarget

FAULT_DRAIN = -254  # below -253: keepalived puts the instance in FAULT (the way out with nopreempt)
PEER_TIMEOUT = 2.0
EVENTS = ("INSTANCE", "GROUP")  # the first word of what keepalived notifies


def notified(target: KeepalivedTarget, args: tuple[str, ...]) -> dict:
    """What keepalived notified (``INSTANCE|GROUP NAME STATE PRIORITY``), kept
    for status and metrics; the audit log entry.  :raises ConfigError: not those four."""
    if len(args) != 4 or args[0] not in EVENTS or args[2] not in ctl.STATES \
            or not args[3].isdigit():
        raise ConfigError(f"vrrp-notify: expected INSTANCE|GROUP NAME STATE PRIORITY from keepalived "
                          f"(got {' '.join(args)!r})")
    note = handover.reopen(target) if args[2] == "MASTER" else ""  # closed by a drain or a handover
    entry = ctl.record_state(target.settings.state_dir, args[1], args[2], int(args[3]))
    if target.settings.options.forward_orphans_ms:  # at each change (after a reboot too): armed as it says
        note = "; ".join(filter(None, (note, _forward_orphans(target))))
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "target": target.name,
            "action": "vrrp", "node": target.settings.options.node, "instance": args[1],
            "result": args[2], "priority": entry["priority"],
            "message": f"{target.name}: node {target.settings.options.node} is {args[2]} for {args[1]}"
                       + (f"; {note}" if note else "")}


def _forward_orphans(target: KeepalivedTarget) -> str:
    """Arm orphans.py's table for the new state (installed if it is not there); a failure is told, not raised."""
    try:
        target.forward_orphans(target.path.read_text(), changed=False)
        return ""
    except (LbctlError, OSError) as exc:
        return f"forward_orphans failed: {exc}"


def follow(target: KeepalivedTarget, fifo: Path, record: Callable[[dict], None]) -> None:
    """Record each state change keepalived writes to its notify FIFO (``INSTANCE "vip"
    MASTER 150``, in order, unlike notify scripts that may finish out of order) until
    keepalived stops this process or removes the FIFO."""
    while fifo.is_fifo():
        with fifo.open() as lines:
            for line in lines:
                words = shlex.split(line)
                if len(words) == 4 and words[0] in EVENTS and words[2] in ctl.STATES:
                    record(notified(target, tuple(words)))


def node_report(target: KeepalivedTarget, configs: dict[str, str | None]) -> dict:
    """What this node says of itself at ``/vrrp`` (its lbctl watch): its VRRP states and
    the sha256 of each load balancer configuration in place (``configs``)."""
    opts = target.settings.options
    return {"node": opts.node, "running": ctl.running(opts.pid_file) is not None,
            "drained": ctl.drain_value(opts.drain_file) != 0, "fit": fit(target),
            "vrrp": {name: e["state"] for name, e in ctl.read_states(target.settings.state_dir).items()},
            "configs": configs}


def fit(target: KeepalivedTarget) -> bool | None:
    """Whether the last ``lbctl check`` of ``check_target`` (its check.json) passed and is
    recent (keepalived runs it every ``check_interval``); None without a check target."""
    opts = target.settings.options
    lb = target.siblings.get(opts.check_target)
    if lb is None:
        return None
    try:
        entry = json.loads((Path(lb.state_dir) / "check.json").read_text())
        age = time.time() - float(entry["checked"])
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return bool(entry.get("fit")) and age <= (opts.check_interval_ms * (opts.check_fall + 1)
                                              + opts.script_timeout_ms) / 1000


def unready(target: KeepalivedTarget, peers: dict[str, dict]) -> list[str]:
    """Why the peers cannot take the VIPs over now: unreachable, keepalived stopped,
    drained, their load balancer unfit, or another configuration than this node's (in place here)."""
    mine = target.configs()
    why = []
    for name, report in peers.items():
        if "error" in report:
            why.append(f"peer {name} is unreachable ({report['error']})")
        elif report.get("running") is False:
            why.append(f"peer {name}'s keepalived is not running")
        elif report.get("drained"):
            why.append(f"peer {name} is drained itself")
        elif report.get("fit") is False:
            why.append(f"peer {name}'s load balancer fails its check")
        elif differ := mismatched(mine, {name: report}):
            why.append(f"peer {name} serves another {', '.join(differ)} configuration")
    return why


def peer_reports(target: KeepalivedTarget) -> dict[str, dict]:
    """Each peer's ``/vrrp`` (its ``status_url``), or ``{"error": ...}``; peers without one are left out."""
    out = {}
    for peer in target.settings.options.peers:
        if peer.status_url:
            try:
                with urllib.request.urlopen(peer.status_url, timeout=PEER_TIMEOUT) as answer:
                    out[peer.name] = json.loads(answer.read())
            except (OSError, ValueError) as exc:
                out[peer.name] = {"error": str(getattr(exc, "reason", None) or exc)}
    return out


def mismatched(mine: dict[str, str | None], peers: dict[str, dict]) -> list[str]:
    """The configurations (by target name) a peer has otherwise than this node.  Pure."""
    return sorted({name for report in peers.values() if "error" not in report
                   for name, sha in (report.get("configs") or {}).items()
                   if name in mine and sha != mine[name]})


def drain(target: KeepalivedTarget, timeout: float) -> str:
    """If every peer with a ``status_url`` is ready (``unready``), close this node's kept-alive
    connections (handover.py), then lower its priority below its peers' and wait until it
    holds no VIP and a peer does; undone if that does not happen within ``timeout``.

    :raises LbctlError: keepalived does not run, a peer is not ready, or it did not take over in time.
    """
    opts = target.settings.options
    if ctl.running(opts.pid_file) is None:
        raise LbctlError(f"{target.name}: keepalived is not running (pid file {opts.pid_file}): nothing to drain")
    if why := unready(target, peer_reports(target)):  # before the priority changes: nothing moved yet
        raise LbctlError(f"{target.name}: not draining node {opts.node}: {'; '.join(why)}")
    closed = handover.close_connections(target)
    ctl.set_drain(opts.drain_file, FAULT_DRAIN if opts.nopreempt else 1 - opts.me.priority)
    settle = 3 * opts.advert_int_ms / 1000 + 1  # master-down: a live peer has taken over by then
    try:
        _wait(lambda: _released(target) and _peer_took_over(target), timeout, settle)
    except LbctlError:
        ctl.set_drain(opts.drain_file, 0)
        handover.reopen(target)
        raise LbctlError(f"{target.name}: no peer took the virtual IPs within {timeout:g}s; "
                         f"node {opts.node} is back at priority {opts.me.priority}") from None
    how = ("a peer says it holds the virtual IPs" if peer_reports(target) else
           "no peer has a status_url to confirm it holds the virtual IPs" if opts.nopreempt else
           "a peer holds the virtual IPs (its adverts keep this node BACKUP)")
    return f"{target.name}: node {opts.node} drained: {_states(target)}; {how}; {closed}"


def restore(target: KeepalivedTarget, timeout: float) -> str:
    """Put this node's priority back; with preemption and the highest priority, first ask the
    peers to close their kept-alive connections (handover.py), then wait until it is master again."""
    opts = target.settings.options
    takes_back = not opts.nopreempt and opts.me.priority == max(n.priority for n in opts.nodes)
    notes = handover.ask_peers(target) if takes_back else []
    ctl.set_drain(opts.drain_file, 0)
    if takes_back:
        try:
            _wait(lambda: _all(target, "MASTER"), timeout, 0)
        except LbctlError:
            asked = ", ".join(p.name for p in opts.peers if p.status_url)
            raise LbctlError(f"{target.name}: node {opts.node} is not MASTER within {timeout:g}s of its restore"
                             + (f"; {asked} answer Connection: close until next MASTER (or "
                                f"lbctl drain-node --restore there)" if asked else "")) from None
    notes.append(handover.reopen(target))  # also when it stays BACKUP (nopreempt, a lower priority)
    return "; ".join([f"{target.name}: node {opts.node} restored to priority {opts.me.priority}: {_states(target)}",
                      *filter(None, notes)])


def _wait(done, timeout: float, settle: float) -> None:
    """Until ``done()`` has held for ``settle`` seconds.  :raises LbctlError: not within ``timeout``."""
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if done():
            since = since or time.monotonic()
            if time.monotonic() - since >= settle:
                return
        else:
            since = None
        time.sleep(0.05)
    raise LbctlError("not within the deadline")


def _all(target: KeepalivedTarget, *states: str) -> bool:
    found = ctl.read_states(target.settings.state_dir)
    return bool(found) and all(e["state"] in states for e in found.values())


def _released(target: KeepalivedTarget) -> bool:
    return _all(target, "BACKUP", "FAULT")


def _peer_took_over(target: KeepalivedTarget) -> bool:
    """A peer with a ``status_url`` says it is master of every instance; without one, a
    node that stays BACKUP hears a master (else it would take over once master-down passed)."""
    reports = peer_reports(target)
    if not reports:
        return True
    mine = set(ctl.read_states(target.settings.state_dir))
    return any(mine <= {n for n, s in (r.get("vrrp") or {}).items() if s == "MASTER"} for r in reports.values())


def _states(target: KeepalivedTarget) -> str:
    found = ctl.read_states(target.settings.state_dir)
    return ", ".join(f"{name} {e['state']}" for name, e in found.items()) or "no state notified yet"


def status_summary(target: KeepalivedTarget, report: dict, peers: dict[str, dict]) -> str:
    """One line for ``lbctl status``: this node's and its peers' states, and whether the configs match."""
    parts = [f"node {report['node']}{' (drained)' if report['drained'] else ''}: {_states(target)}"]
    for name, peer in peers.items():
        vrrp = peer.get("vrrp") or {}
        parts.append(f"peer {name}: " + (f"unreachable ({peer['error']})" if "error" in peer else
                                         ", ".join(f"{i} {s}" for i, s in vrrp.items()) or "no state notified yet"))
    if peers:
        differ = mismatched(report["configs"], peers)
        parts.append(f"configs differ: {', '.join(differ)}" if differ else "configs match")
    return "; ".join(parts)
