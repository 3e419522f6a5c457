"""The operator page's view model: what lbctl knows now (``Known``) and what each target
reports of its members, made into the one dict that is both ``/api/v1/status`` and
what the page renders.  Pure: no I/O, no clock (the caller passes ``now``).

One request costs one pass over the pools (a cheap name test with ``q``), and the
members of the current page only: at 10,000 pools of 5 members a page is 100 pools.
Documented field by field in docs/dashboard.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from lbctl import model
from lbctl.ui import chart

SCHEMA = 1
PER_PAGE = 100
HISTORY = 50  # audit entries shown, newest first
DIFF_SHOWN = 5  # changed lines shown per apply; the rest are counted
UNRECORDED = re.compile(r"\.\.\. (\d+) more lines")  # how the audit log ends a diff it cut (deploy.changed)
LIVE_STATES = ("up", "down", "maint", "drain", "unknown")


def no_checks(pools: Iterable[str]) -> dict:
    return {}


@dataclass(frozen=True)
class Known:
    """What the process knows now; every part immutable or a fresh copy (the page reads it
    from its own threads while the watch goes on)."""

    desired: model.Desired | None  # what lbctl wants served (None: nothing built yet)
    static: frozenset[str] = frozenset()  # pools the inventory declares (their settings come from there)
    discovered: frozenset[str] = frozenset()  # pools whose members come from a Consul service
    targets: tuple[dict, ...] = ()  # per target: ``lbctl status --json`` plus role, vrrp, live_note
    # target -> members, error text or None; or a function of the pools shown that gives it (read for those only)
    live: Mapping[str, dict | str | None] | Callable[[tuple[str, ...]], Mapping] = field(default_factory=dict)
    audit: tuple[dict, ...] = ()  # audit log entries, oldest first
    refused_routes: tuple = ()  # ``discovery.routes.Refusal``s
    refusals: Mapping[str, str] = field(default_factory=dict)  # target -> the guard's refusal held back
    data_age: float | None = None  # seconds since discovery last answered (None: never, or an inventory)
    source: str = "inventory"  # consul or inventory
    role: str = "leader"  # leader or follower (an election); leader without one
    # pool names -> pool -> member -> the discovery check that keeps it out (name, status, output);
    # asked for the pools shown only
    why: Callable[[Iterable[str]], Mapping[str, Mapping[str, dict]]] = no_checks


def status(known: Known, now: float, q: str = "", page: int = 1, per_page: int = PER_PAGE) -> dict:
    """The whole ``/api/v1/status`` answer for the query ``q`` (a name substring) and ``page``."""
    needle = q.strip().casefold()
    pools = list(known.desired.pools) if known.desired else []
    if needle:
        pools = [p for p in pools if needle in p.name.casefold() or any(needle in m.name.casefold() for m in p.members)]
    pages = max(1, -(-len(pools) // per_page))
    page = min(max(1, page), pages)
    shown = pools[(page - 1) * per_page:page * per_page]
    live = known.live(tuple(p.name for p in shown)) if callable(known.live) else known.live
    reporting = {name: states for name, states in live.items() if isinstance(states, dict)}
    why = known.why([p.name for p in shown if p.name in known.discovered])
    return {
        "schema": SCHEMA,
        "query": q,
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "source": {"kind": known.source, "data_age_s": None if known.data_age is None else round(known.data_age, 3)},
        "role": known.role,
        "targets": [target_view(t, known, live.get(t["target"])) for t in known.targets],
        "listeners": listeners_view(known.desired, needle),
        "routes_refused": [refused_view(r) for r in known.refused_routes],
        "guard_refusals": [{"target": t, "message": m} for t, m in sorted(known.refusals.items())],
        "pools": {"total": len(known.desired.pools) if known.desired else 0, "matched": len(pools),
                  "items": [pool_view(p, known, reporting, why.get(p.name, {})) for p in shown]},
        "history": history(known.audit),
        "chart": chart.summary(known.audit, now),
    }


def target_view(t: dict, known: Known, live) -> dict:
    last = t.get("last_apply") or None
    return {
        "name": t["target"], "kind": t["kind"], "config": t.get("config"), "config_hash": t.get("sha256"),
        "drift": list(t.get("drift") or ()), "role": t.get("role", known.role), "vrrp": t.get("vrrp"),
        "last_apply": None if last is None else {**{k: last.get(k) for k in ("time", "action", "result", "message",
                                                                               "duration_s")},
                                                 "changed": diff_summary(last.get("changed"))},
        "refused": known.refusals.get(t["target"]) or (t.get("refused") or {}).get("message"),
        "process": (t.get("process") or {}).get("summary") or running_text(t.get("process") or {}),
        "live": "reported" if isinstance(live, dict) else (live or t.get("live_note") or "not reported"),
    }


def running_text(proc: dict) -> str:
    if not proc:
        return ""
    if not proc.get("running"):
        return "not running"
    return f"running, master {proc['master_pid']}" if proc.get("master_pid") else "running"


def listeners_view(desired: model.Desired | None, needle: str) -> list[dict]:
    out = []
    for lst in sorted(desired.listeners if desired else (), key=lambda x: x.name):
        routes = [{"listener": lst.name, "host": r.host or "", "path": r.path or "", "pool": r.pool,
                   "source": "service" if r.service else "inventory", "service": r.service}
                  for r in lst.routes]
        if needle:
            routes = [r for r in routes if any(needle in (r[k] or "").casefold()
                                               for k in ("listener", "host", "path", "pool", "service"))]
            if not routes and needle not in lst.name.casefold():
                continue
        out.append({"name": lst.name, "address": lst.address, "port": lst.port, "mode": lst.mode,
                    "default_pool": lst.default_pool, "routes": routes})
    return out


def refused_view(r) -> dict:
    return {"service": r.service, "route": r.route, "reason": r.reason, "listener": r.listener,
            "holder": r.holder, "conflict": r.conflict}


def pool_view(pool: model.Pool, known: Known, reporting: Mapping[str, Mapping], why: Mapping[str, dict]) -> dict:
    live = {name: states.get(pool.name, {}) for name, states in reporting.items()}
    members = [member_view(m, live, why.get(m.name)) for m in pool.members]
    counts = {state: 0 for state in LIVE_STATES}
    for m in members:
        counts[m["live"]] += 1
    h = pool.health
    return {"name": pool.name, "source": "service" if pool.name in known.discovered else "inventory",
            "settings": "inventory" if pool.name in known.static else "defaults",
            "balance": pool.balance, "health": f"{h.type} {h.path}" if h.type == "http" else h.type,
            "counts": counts, "members": members}


def member_view(m: model.Member, live: dict[str, dict], why: dict | None = None) -> dict:
    endpoint = f"{m.address}:{m.port}"  # a runtime slot serves it under another name
    by_target = {target: servers[m.name if m.name in servers else endpoint] for target, servers in live.items()
                 if m.name in servers or endpoint in servers}
    first = next(iter(by_target.values()), None)
    return {"name": m.name, "address": m.address, "port": m.port, "weight": m.weight, "want": m.state,
            "tags": list(m.tags), "meta": dict(m.meta),
            "live": first["live"] if first else "unknown",
            "check": first.get("check", "") if first else "",
            "sessions": first.get("sessions") if first else None,
            "discovery_check": None if why is None else {k: str(why.get(k, "")) for k in ("name", "status", "output")},
            "by_target": by_target}


def history(audit: tuple[dict, ...]) -> list[dict]:
    """The newest ``HISTORY`` entries, newest first, each with its diff summary (``changed``)."""
    keys = ("time", "target", "action", "result", "message", "duration_s", "hash_before", "hash_after", "leader")
    return [{**{k: e.get(k) for k in keys}, "changed": diff_summary(e.get("changed"))}
            for e in reversed(audit[-HISTORY:])]


def diff_summary(changed) -> dict | None:
    """An apply's changed lines as counts and the first ``DIFF_SHOWN`` lines (a first apply
    changes the whole file): ``lines`` in all (the audit log keeps the first 50 and counts the
    rest), ``added``/``removed`` among the kept ones, ``first`` and how many ``more``."""
    kept = [str(line) for line in changed or ()]
    cut = UNRECORDED.fullmatch(kept[-1]) if kept else None
    if cut:
        kept = kept[:-1]
    if not kept:
        return None
    total = len(kept) + (int(cut.group(1)) if cut else 0)
    return {"lines": total, "added": sum(line.startswith("+") for line in kept),
            "removed": sum(line.startswith("-") for line in kept), "first": kept[:DIFF_SHOWN],
            "more": total - min(len(kept), DIFF_SHOWN)}

