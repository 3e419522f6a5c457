"""Consul health entries → raw pool data, validated like an inventory.  Pure.

Everything from Consul is untrusted.  An instance with an unusable ID, address,
port or weight is left out and reported; tags and meta values that fail their
checks are dropped and reported; per-service load-balancing options come from
``Service.Meta`` keys with the ``lb-`` prefix (documented in docs/consul.md) and
go through the same validators as an inventory.  Nothing here raises for bad
data from Consul: it returns what it could use and the list of problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lbctl import model
from lbctl import validate as v
from lbctl.errors import ConfigError

# Service.Meta key → (pool setting, how the string becomes a value)
INT = re.compile(r"[0-9]{1,7}")
META_OPTIONS = {
    "lb-balance": (("balance",), str),
    "lb-health-type": (("health", "type"), str),
    "lb-health-path": (("health", "path"), str),
    "lb-health-host": (("health", "host"), str),
    "lb-health-interval": (("health", "interval"), str),
    "lb-health-expect": (("health", "expect_status"), int),
    "lb-sticky-cookie": (("sticky_cookie",), str),
    "lb-maxconn": (("maxconn",), int),
    "lb-connect-timeout": (("connect_timeout",), str),
    "lb-server-timeout": (("server_timeout",), str),
    "lb-dns-name": (("dns", "name"), str),  # the dns kind (docs/dns.md)
    "lb-dns-types": (("dns", "types"), str),  # comma-separated: A,AAAA,SRV
    "lb-dns-port-name": (("dns", "port_name"), str),
}
ROUTE_KEYS = ("lb-route", "lb-listener")  # read and reported by lbctl/discovery/routes.py
STATUS_ORDER = {"passing": 0, "warning": 1, "critical": 2}
INSTANCE_STATES = ("drain", "backup")  # Meta lb-state of one serving instance


@dataclass(frozen=True)
class Policy:
    """Which instances serve: ``passing`` only (default) or ``warning`` too."""

    include_warning: bool = False


# The fields of a /v1/health/service entry that lbctl reads (here, and in the watcher:
# each instance's node and whether it has checks of its own).
NODE_FIELDS = ("Node", "Address")
SERVICE_FIELDS = ("ID", "Service", "Address", "Port", "Weights", "Meta", "Tags", "CreateIndex")
CHECK_FIELDS = ("CheckID", "Status", "ServiceID")


def slim(entries: Any) -> Any:
    """A service's entries with only the fields lbctl reads (a sixth of the memory);
    anything that is not the expected shape is kept as it is, for ``members`` to judge."""
    if not isinstance(entries, list):
        return entries
    return [{"Node": pick(e.get("Node"), NODE_FIELDS), "Service": pick(e.get("Service"), SERVICE_FIELDS),
             "Checks": [pick(c, CHECK_FIELDS) for c in e["Checks"]] if isinstance(e.get("Checks"), list)
             else e.get("Checks")} if isinstance(e, dict) else e for e in entries]


def pick(data: Any, fields: tuple[str, ...]) -> Any:
    return {k: data[k] for k in fields if k in data} if isinstance(data, dict) else data


def status(checks: list) -> str:
    """Consul's aggregated status: maintenance > critical > warning > passing."""
    worst = "passing"
    for check in checks or []:
        cid = str(check.get("CheckID", "")) if isinstance(check, dict) else ""
        if cid == "_node_maintenance" or cid.startswith("_service_maintenance:"):
            return "maintenance"
        st = check.get("Status") if isinstance(check, dict) else None
        if STATUS_ORDER.get(st, 2) > STATUS_ORDER[worst]:
            worst = st if st in STATUS_ORDER else "critical"
    return worst


def members(service: str, entries: Any, policy: Policy) -> tuple[list[dict], list[str]]:
    """Raw member mappings for one service's ``/v1/health/service`` answer, and problems."""
    out, problems = [], []
    if not isinstance(entries, list):
        return [], [f"consul service {v.show(service)}: answer is not a list"]
    for entry in entries:
        try:
            out.append(member(entry, policy, problems))
        except ConfigError as exc:
            problems.append(f"consul service {v.show(service)}: instance left out: {exc}")
    names = [m["name"] for m in out]
    for m in out:  # IDs are unique per node only: qualify the ones that collide
        if names.count(m["name"]) > 1:
            m["name"] = f"{m['name']}.{m.pop('_node')}"
        m.pop("_node", None)
    return sorted(out, key=lambda m: m["name"]), problems


def member(entry: Any, policy: Policy, problems: list[str]) -> dict:
    """One health entry → a raw member (validated fields).  :raises ConfigError: unusable."""
    data = v.mapping(entry, "entry")
    svc = v.mapping(data.get("Service"), "Service")
    node = v.mapping(data.get("Node") or {}, "Node")
    sid = v.ident(svc.get("ID"), "Service.ID")
    where = f"instance {sid}"
    addr = svc.get("Address") or node.get("Address")
    addr = v.address(addr, f"{where}: Service.Address")
    port = v.port(svc.get("Port"), f"{where}: Service.Port")
    state = status(data.get("Checks"))
    weights = svc.get("Weights") or {}
    weight = weights.get("Warning" if state == "warning" else "Passing", 1) if isinstance(weights, dict) else 1
    weight = v.integer(weight, f"{where}: Service.Weights", model.WEIGHT_MIN, model.WEIGHT_MAX)
    serving = state == "passing" or (state == "warning" and policy.include_warning)
    wanted = (svc.get("Meta") or {}).get("lb-state") if isinstance(svc.get("Meta"), dict) else None
    if wanted is not None and wanted not in INSTANCE_STATES:
        problems.append(f"{where}: Meta.lb-state {v.show(wanted)} ignored: must be one of {', '.join(INSTANCE_STATES)}")
        wanted = None
    raw = {"name": sid, "address": addr, "port": port, "weight": weight,
           "state": (wanted or "enabled") if serving else "maint", "_node": str(node.get("Node", ""))}
    tags = [t for t in svc.get("Tags") or [] if keep(v.TAG, t, f"{where}: tag", problems)]
    meta = {k: x for k, x in (svc.get("Meta") or {}).items()
            if keep(v.META_KEY, k, f"{where}: meta key", problems)
            and keep(v.META_VALUE, x, f"{where}: Meta.{k}", [] if k in ROUTE_KEYS else problems)}
    if tags:
        raw["tags"] = tags
    if meta:
        raw["meta"] = meta
    return raw


def keep(regex: re.Pattern, value: Any, what: str, problems: list[str]) -> bool:
    if isinstance(value, str) and regex.fullmatch(value):
        return True
    problems.append(f"{what} {v.show(value)} dropped: not in the safe character set")
    return False


def first_meta(entries: Any) -> dict:
    """The ``Service.Meta`` of the service's first instance (by ID): where its ``lb-*``
    options and routes are read from; {} if it has none."""
    metas = sorted(((str((e.get("Service") or {}).get("ID")), (e.get("Service") or {}).get("Meta") or {})
                    for e in entries if isinstance(e, dict) and isinstance(e.get("Service"), dict)),
                   key=lambda x: x[0]) if isinstance(entries, list) else []
    return metas[0][1] if metas and isinstance(metas[0][1], dict) else {}


def options(service: str, entries: Any) -> tuple[dict, list[str]]:
    """Pool settings from the ``lb-*`` meta keys of the service's first instance (by ID)."""
    out: dict = {}
    problems = []
    for key, value in first_meta(entries).items():
        if key not in META_OPTIONS:
            continue
        (path, kind) = META_OPTIONS[key]
        if kind is int:
            if not (isinstance(value, str) and INT.fullmatch(value)):
                problems.append(f"consul service {v.show(service)}: Meta.{key} {v.show(value)} is not a number; ignored")
                continue
            value = int(value)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out, problems


OUTPUT_MAX = 300  # characters of a failing check's output kept for the operator page


def failing(entries: Any) -> dict[str, dict]:
    """Why each instance that is not passing is not: member name (as ``members`` names it)
    → its worst check (``name``, ``status``, ``output`` cut to ``OUTPUT_MAX`` characters),
    untrusted text for the operator page only.  Never part of the model: a new output
    causes no apply."""
    found = []
    for entry in entries if isinstance(entries, list) else ():
        svc = entry.get("Service") if isinstance(entry, dict) else None
        if not isinstance(svc, dict) or not isinstance(svc.get("ID"), str):
            continue
        node = entry.get("Node") if isinstance(entry.get("Node"), dict) else {}
        worst = worst_check(entry.get("Checks"))
        found.append((svc["ID"], str(node.get("Node", "")), worst))
    ids = [sid for sid, _, _ in found]
    return {sid if ids.count(sid) == 1 else f"{sid}.{node}": worst for sid, node, worst in found if worst}


def worst_check(checks: Any) -> dict | None:
    """The check that sets the instance's ``status`` (maintenance, then critical, then warning)."""
    rank = {"maintenance": 3, **STATUS_ORDER}
    best, best_rank = None, 0
    for check in checks if isinstance(checks, list) else ():
        if not isinstance(check, dict):
            continue
        cid = str(check.get("CheckID", ""))
        st = "maintenance" if cid == "_node_maintenance" or cid.startswith("_service_maintenance:") \
            else check.get("Status") if check.get("Status") in STATUS_ORDER else "critical"
        if rank[st] > best_rank:
            text = str(check.get("Output") or check.get("Notes") or "")
            best_rank, best = rank[st], {"name": str(check.get("Name") or cid), "status": st,
                                         "output": text if len(text) <= OUTPUT_MAX else text[:OUTPUT_MAX - 1] + "…"}
    return best


def placement(entries: list) -> tuple[set[str], bool]:
    """The nodes of a service's instances, and whether one of them has no check of its own."""
    nodes, checkless = set(), False
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        node, svc = entry.get("Node"), entry.get("Service")
        if isinstance(node, dict) and isinstance(node.get("Node"), str):
            nodes.add(node["Node"])
        sid = svc.get("ID") if isinstance(svc, dict) else None
        own = [c for c in entry.get("Checks") or [] if isinstance(c, dict) and c.get("ServiceID") == sid]
        checkless = checkless or not own
    return nodes, checkless
