"""Catalog writes: nodes, services and checks, through the agent API or the catalog API.

Records are stored in the exact JSON shape Consul returns and are copy-on-write: a
change replaces the dict, so readers may serialize a record outside the lock.
Index rules (Consul ``state/catalog.go``): a service write bumps the ``services``
table and that service's index; a check write bumps the ``checks`` table and the
index of the service it belongs to (a node check: of every service on the node);
writing a record identical to the stored one changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from .checktable import CheckTable
from .core import ConsulError, StoreCore
from .durations import format_duration, parse_duration

SERVICE_MAINT_PREFIX = "_service_maintenance:"
NODE_MAINT = "_node_maintenance"
SERVICE_MAINT_REASON = ("Maintenance mode is enabled for this service, but no reason was provided. "
                        "This is a default message.")
NODE_MAINT_REASON = ("Maintenance mode is enabled for this node, but no reason was provided. "
                     "This is a default message.")
STATUSES = ("passing", "warning", "critical")
_INDEX_FIELDS = ("CreateIndex", "ModifyIndex")


def ci(body: Any) -> dict[str, Any]:
    """Case- and snake-insensitive view of a JSON object (Consul decodes keys so)."""
    if not isinstance(body, dict):
        return {}
    return {str(k).lower().replace("_", ""): v for k, v in body.items()}


def same(a: dict | None, b: dict) -> bool:
    """Equal apart from Create/ModifyIndex."""
    if a is None:
        return False
    return {k: v for k, v in a.items() if k not in _INDEX_FIELDS} == \
        {k: v for k, v in b.items() if k not in _INDEX_FIELDS}


class CatalogMixin(StoreCore):
    node_name: str
    datacenter: str

    def _init_catalog(self, node_name: str, node_address: str, datacenter: str,
                      check_update_interval: float) -> None:
        self.node_name = node_name
        self.node_address = node_address
        self.datacenter = datacenter
        self.check_update_interval = check_update_interval
        self._nodes: dict[str, dict] = {}
        self._svcs: dict[str, dict[str, dict]] = {}
        self._checks: dict[str, dict[str, dict]] = {}
        self._by_name: dict[str, set[tuple[str, str]]] = {}
        self._check_ids: dict[tuple[str, str], set[str]] = {}  # (node, service id or "") -> check ids
        self._svc_index: dict[str, int] = {}
        self._extinction = 0
        self._agent_services: set[str] = set()
        self._agent_checks: dict[str, dict | None] = {}  # check id -> TTL state (None: not TTL)
        self._drop_read_caches()

    def _drop_read_caches(self) -> None:
        """Caches of ``views.py`` (checked by record identity, so a replaced record misses)."""
        self._check_table = CheckTable(c for checks in self._checks.values() for c in checks.values())
        self._sn_cache: dict[tuple[str, str], tuple[dict, dict, dict]] = {}  # -> (node, service, ServiceNode)
        self._services_list: tuple[int, dict[str, list[str]]] | None = None  # (services index, answer)
        self._tags_of: dict[str, list[str]] = {}  # service -> its instances' tags, until one is written
        # every service's tags, as last answered (None: a service came or went since)
        self._all_tags: dict[str, list[str]] | None = None
        self._stale: set[str] = set()  # services written since that answer
        # (node, service ID) -> its rank in its node's dict, which keeps the order of insertion
        self._removed = 0
        self._placed = {key: i for i, key in enumerate((n, sid) for n, m in self._svcs.items() for sid in m)}

    # ------------------------------------------------------------ record builders
    @staticmethod
    def node_id(name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.consul-emulator"))

    def _service_record(self, b: dict, sid: str) -> dict:
        w = ci(b.get("weights") or {})
        rec: dict[str, Any] = {}
        if b.get("kind"):
            rec["Kind"] = b["kind"]
        rec.update({
            "ID": sid, "Service": b["name"] if "name" in b else b.get("service", ""),
            "Tags": list(b.get("tags") or []), "Address": b.get("address") or "",
        })
        if b.get("taggedaddresses"):
            rec["TaggedAddresses"] = _service_addresses(b["taggedaddresses"])
        rec.update({
            "Meta": dict(b["meta"]) if b.get("meta") else None, "Port": int(b.get("port") or 0),
            "Weights": {"Passing": int(w.get("passing", 1) or 1), "Warning": int(w.get("warning", 1) or 1)},
            "EnableTagOverride": bool(b.get("enabletagoverride", False)),
            "Proxy": {"Mode": "", "MeshGateway": {}, "Expose": {}, **(b.get("proxy") or {})},
            "Connect": dict(b.get("connect") or {}), "PeerName": "",
        })
        return rec

    def _check_record(self, node: str, c: dict, *, cid: str, name: str, svc: dict | None,
                      status: str) -> dict:
        kind = check_type(c)
        return {
            "Node": node, "CheckID": cid, "Name": name, "Status": status,
            "Notes": c.get("notes") or "", "Output": c.get("output") or "",
            "ServiceID": svc["ID"] if svc else "", "ServiceName": svc["Service"] if svc else "",
            "ServiceTags": list(svc["Tags"]) if svc else [], "Type": kind,
            "Interval": _dur(c.get("interval")), "Timeout": _dur(c.get("timeout")),
            "ExposedPort": 0, "Definition": {}, "CreateIndex": 0, "ModifyIndex": 0,
        }

    # ------------------------------------------------------------ primitive writes
    def _mark_svc(self, name: str) -> None:
        self._tags_of.pop(name, None)
        self._stale.add(name)
        self._svc_index[name] = self._widx()
        self._touch_key(("svc", name))

    def _put_node(self, name: str, address: str, *, node_id: str | None = None,
                  meta: dict | None = None, tagged: dict | None = None) -> None:
        old = self._nodes.get(name)
        rec = {"ID": node_id or (old["ID"] if old else self.node_id(name)), "Node": name,
               "Address": address, "Datacenter": self.datacenter,
               "TaggedAddresses": dict(tagged) if tagged is not None else {"lan": address, "wan": address},
               "Meta": dict(meta) if meta is not None else {},
               "CreateIndex": 0, "ModifyIndex": 0}
        if same(old, rec):
            return
        idx = self._touch_table("nodes")
        rec["CreateIndex"] = old["CreateIndex"] if old else idx
        rec["ModifyIndex"] = idx
        self._nodes[name] = rec
        self._svcs.setdefault(name, {})
        self._checks.setdefault(name, {})
        for svc in self._svcs[name].values():
            self._mark_svc(svc["Service"])

    def _put_service(self, node: str, rec: dict) -> bool:
        if node not in self._nodes:
            raise ConsulError(500, "Missing node registration")
        sid = rec["ID"]
        old = self._svcs[node].get(sid)
        if same(old, rec):
            return False
        idx = self._touch_table("services")
        rec["CreateIndex"] = old["CreateIndex"] if old else idx
        rec["ModifyIndex"] = idx
        self._svcs[node][sid] = rec
        if old is None:  # a new key goes last in its node's dict; an update keeps its place
            self._placed[(node, sid)] = len(self._placed) + self._removed
        if old is not None and old["Service"] != rec["Service"]:
            self._unlink(node, sid, old["Service"])
        if rec["Service"] not in self._by_name:
            self._all_tags = None  # a new service: every name again, in order
        self._by_name.setdefault(rec["Service"], set()).add((node, sid))
        self._mark_svc(rec["Service"])
        for cid in sorted(self._check_ids.get((node, sid), ())):
            chk = self._checks[node][cid]
            if (chk["ServiceName"], chk["ServiceTags"]) != (rec["Service"], rec["Tags"]):
                self._put_check(node, {**chk, "ServiceName": rec["Service"], "ServiceTags": list(rec["Tags"])})
        return True

    def _unlink(self, node: str, sid: str, name: str) -> None:
        members = self._by_name.get(name)
        if members is not None:
            members.discard((node, sid))
            self._mark_svc(name)
            if not members:
                del self._by_name[name]
                self._all_tags = None
                del self._svc_index[name]
                self._extinction = self._widx()

    def _affected(self, node: str, chk: dict) -> set[str]:
        svcs = self._svcs.get(node, {})
        if chk["ServiceID"]:
            svc = svcs.get(chk["ServiceID"])
            return {svc["Service"]} if svc else set()
        return {s["Service"] for s in svcs.values()}

    def _put_check(self, node: str, rec: dict) -> bool:
        if node not in self._nodes:
            raise ConsulError(500, "Missing node registration")
        if rec["ServiceID"] and rec["ServiceID"] not in self._svcs[node]:
            raise ConsulError(500, f"Missing service registration for check {rec['CheckID']!r}")
        old = self._checks[node].get(rec["CheckID"])
        if same(old, rec):
            return False
        idx = self._touch_table("checks")
        rec = {**rec, "CreateIndex": old["CreateIndex"] if old else idx, "ModifyIndex": idx}
        self._checks[node][rec["CheckID"]] = rec
        self._check_table.put(rec)
        if old is not None and old["ServiceID"] != rec["ServiceID"]:
            self._check_ids[(node, old["ServiceID"])].discard(rec["CheckID"])
        self._check_ids.setdefault((node, rec["ServiceID"]), set()).add(rec["CheckID"])
        for name in self._affected(node, rec):
            self._mark_svc(name)
        if rec["Status"] == "critical" and (old is None or old["Status"] != "critical"):
            self._on_check_critical(node, rec["CheckID"])
        return True

    def _del_check(self, node: str, cid: str) -> None:
        chk = self._checks.get(node, {}).pop(cid, None)
        if node == self.node_name:
            self._agent_checks.pop(cid, None)
        if chk is None:
            return
        self._check_table.delete(node, cid)
        ids = self._check_ids.get((node, chk["ServiceID"]))
        if ids is not None:
            ids.discard(cid)
            if not ids:
                del self._check_ids[(node, chk["ServiceID"])]
        self._touch_table("checks")
        for name in self._affected(node, chk):
            self._mark_svc(name)
        self._on_check_removed(node, cid)

    def _del_service(self, node: str, sid: str) -> None:
        if node == self.node_name:
            self._agent_services.discard(sid)
        svc = self._svcs.get(node, {}).get(sid)
        if svc is None:
            return
        for cid in sorted(self._check_ids.get((node, sid), ())):
            self._del_check(node, cid)
        del self._svcs[node][sid]
        self._placed.pop((node, sid), None)
        self._removed += 1  # so that the next new key still ranks after every other
        self._sn_cache.pop((node, sid), None)
        self._touch_table("services")
        self._unlink(node, sid, svc["Service"])

    def _del_node(self, node: str) -> None:
        if node not in self._nodes:
            return
        for sid in list(self._svcs[node]):
            self._del_service(node, sid)
        for cid in list(self._checks[node]):
            self._del_check(node, cid)
        del self._nodes[node], self._svcs[node], self._checks[node]
        self._touch_table("nodes")
        self._on_node_removed(node)

    # hooks for the session mixin
    def _on_check_critical(self, node: str, cid: str) -> None: ...
    def _on_check_removed(self, node: str, cid: str) -> None: ...
    def _on_node_removed(self, node: str) -> None: ...

    def _set_status(self, node: str, cid: str, status: str, output: str) -> None:
        chk = self._checks[node][cid]
        self._put_check(node, {**chk, "Status": status, "Output": output})

    # ------------------------------------------------------------ catalog API
    def catalog_register(self, body: dict) -> None:
        b = ci(body)
        node = b.get("node") or ""
        if not node:
            raise ConsulError(500, "Must provide node")
        svc_body = ci(b.get("service")) if b.get("service") else None
        if svc_body is not None and not svc_body.get("service"):
            raise ConsulError(500, "Must provide service name with ID")
        defs = [ci(d) for d in ([b["check"]] if b.get("check") else []) + list(b.get("checks") or [])]
        with self._txn():
            skip = bool(b.get("skipnodeupdate")) and node in self._nodes
            if not b.get("address") and not skip:
                raise ConsulError(500, "Must provide address if SkipNodeUpdate is not set")
            known = set(self._svcs.get(node, {}))
            if svc_body is not None:
                known.add(str(svc_body.get("id") or svc_body["service"]))
            for c in defs:
                if not (c.get("checkid") or c.get("name")):
                    raise ConsulError(500, "Missing check ID")
                if c.get("serviceid") and c["serviceid"] not in known:
                    raise ConsulError(500, "Missing service registration")
                if (c.get("status") or "critical") not in STATUSES:
                    raise ConsulError(500, f"Invalid check status {c.get('status')!r}")
            if not skip:
                self._put_node(node, b["address"], node_id=b.get("id"), meta=b.get("nodemeta"),
                               tagged=b.get("taggedaddresses"))
            if svc_body is not None:
                svc_body["name"] = svc_body["service"]
                sid = str(svc_body.get("id") or svc_body["service"])
                self._put_service(node, self._service_record(svc_body, sid))
            for c in defs:
                cid = str(c.get("checkid") or c.get("name"))
                svc = self._svcs[node].get(c["serviceid"]) if c.get("serviceid") else None
                self._put_check(node, self._check_record(node, c, cid=cid, name=c.get("name") or cid,
                                                         svc=svc, status=c.get("status") or "critical"))

    def catalog_deregister(self, body: dict) -> None:
        b = ci(body)
        node = b.get("node") or ""
        if not node:
            raise ConsulError(500, "Must provide node")
        with self._txn():
            if b.get("serviceid"):
                self._del_service(node, b["serviceid"])
            elif b.get("checkid"):
                self._del_check(node, b["checkid"])
            else:
                self._del_node(node)

    # ------------------------------------------------------------ reset support
    def _lower_indexes(self, to: int) -> None:
        super()._lower_indexes(to)
        low = lambda r: {**r, "CreateIndex": min(r["CreateIndex"], to), "ModifyIndex": min(r["ModifyIndex"], to)}
        self._nodes = {k: low(v) for k, v in self._nodes.items()}
        self._svcs = {n: {k: low(v) for k, v in m.items()} for n, m in self._svcs.items()}
        self._checks = {n: {k: low(v) for k, v in m.items()} for n, m in self._checks.items()}
        self._svc_index = {k: min(v, to) for k, v in self._svc_index.items()}
        self._extinction = min(self._extinction, to)
        self._drop_read_caches()


# ---------------------------------------------------------------- helpers
def unknown_check(cid: str) -> str:
    return f'Unknown check ID "{cid}". Ensure that the check ID is passed, not the check name.'


def check_type(c: dict) -> str:
    for key, kind in (("ttl", "ttl"), ("http", "http"), ("tcp", "tcp"), ("grpc", "grpc"),
                      ("args", "script"), ("scriptargs", "script"), ("dockercontainerid", "docker"),
                      ("h2ping", "h2ping"), ("udp", "udp"), ("aliasservice", "alias"), ("aliasnode", "alias")):
        if c.get(key):
            return kind
    return ""


def check_seconds(value: Any) -> float:
    """A check's duration field: a Go duration string, or a JSON number of nanoseconds
    (Consul's ``CheckType.UnmarshalJSON``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1e9
    return parse_duration(str(value))


def validate_check(c: dict) -> None:
    """Consul's ``CheckType.Validate`` for the kinds the emulator knows."""
    kind = check_type(c)
    try:
        if kind == "ttl":
            if check_seconds(c["ttl"]) <= 0:
                raise ConsulError(400, "Invalid check: TTL must be > 0 for TTL checks")
        elif kind in ("http", "tcp", "grpc", "script", "docker", "h2ping", "udp"):
            if not c.get("interval") or check_seconds(c["interval"]) <= 0:
                raise ConsulError(400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, or TCP checks")
        elif kind == "":
            raise ConsulError(400, "Invalid check: TTL must be > 0 for TTL checks")
    except ValueError as exc:
        raise ConsulError(400, f"Invalid check: {exc}") from None


def _service_addresses(tagged: Any) -> dict[str, dict[str, Any]]:
    """``TaggedAddresses`` of a service: name -> Consul's ``ServiceAddress`` {Address, Port}."""
    if not isinstance(tagged, dict) or not all(isinstance(v, dict) for v in tagged.values()):
        raise ConsulError(400, "Request decode failed: TaggedAddresses: expected a map of {Address, Port}")
    out = {}
    for name, value in tagged.items():
        v = ci(value)
        try:
            out[str(name)] = {"Address": str(v.get("address") or ""), "Port": int(v.get("port") or 0)}
        except (TypeError, ValueError):
            raise ConsulError(400, f"Request decode failed: TaggedAddresses.{name}.Port: not a number") from None
    return out


def _dur(value: Any) -> str:
    if not value:
        return ""
    try:
        return format_duration(check_seconds(value))
    except ValueError:
        return str(value)
