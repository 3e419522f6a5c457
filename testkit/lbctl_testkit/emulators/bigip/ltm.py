"""The LTM model and its REST surface under ``/mgmt/tm`` (pure: no I/O, no locking).

``Ltm.handle(method, parts, query, body)`` answers one request on the paths
``ltm/{pool,node,monitor,virtual,virtual-address}``, ``auth/partition`` and
``sys/folder``; it raises ``IcrError`` for every non-2xx answer and runs each
write inside ``atomic()`` so a failing request changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from . import names
from .errors import IcrError, API_REST, no_properties, not_found, uri_not_registered
from .objects import MONITOR_DEFAULTS, VIRTUAL, ObjectOps, monitor_spec
from .pools import MEMBER, NODE, POOL, PoolOps
from .stats import StatsOps
from .store import Store, check_fields, public

Result = tuple[int, Any]


@dataclass
class Query:
    select: list[str] | None = None
    partition: str | None = None
    expand: bool = False
    top: int | None = None
    skip: int = 0
    echo: str = ""

    @classmethod
    def parse(cls, params: list[tuple[str, str]]) -> "Query":
        q = cls()
        echo = []
        for key, value in params:
            if key == "ver":
                continue
            echo.append(f"{key}={value.replace(' ', '+')}")
            if key == "$select":
                q.select = [s.strip() for s in value.split(",") if s.strip()]
            elif key == "$filter":
                m = re.fullmatch(r"\s*partition\s+eq\s+(\S+)\s*", value)
                if not m:
                    # [unverified] text: other filter expressions are not emulated.
                    raise IcrError(400, f"Query parameter $filter has an unsupported value: "
                                        f"{value}", API_REST)
                q.partition = m.group(1)
            elif key == "expandSubcollections":
                q.expand = value.lower() == "true"
            elif key in ("$top", "$skip"):
                if not value.isdigit():
                    raise IcrError(400, f"Query parameter {key} must be an integer", API_REST)
                if key == "$top":
                    q.top = int(value)
                else:
                    q.skip = int(value)
        q.echo = "&".join(echo)
        return q


def _project(obj: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    return obj if select is None else {k: obj[k] for k in select if k in obj}


class Ltm(StatsOps, ObjectOps, PoolOps, Store):
    def __init__(self, version: str = "15.1.0") -> None:
        super().__init__(version)
        self.health: dict[tuple[str, str], str] = {}
        self.conns: dict[tuple[str, str], int] = {}
        self.add_builtin_monitors()

    # -- test hooks (runtime state, not configuration) ---------------------------------------
    def set_member_connections(self, pool: str, member: str, count: int) -> None:
        self.member_or_404(pool, member)
        self.conns[(pool, member)] = int(count)

    def set_member_health(self, pool: str, member: str, health: str) -> None:
        if health not in ("up", "down", "checking"):
            raise ValueError(f"health must be up, down or checking, not {health!r}")
        self.member_or_404(pool, member)
        self.health[(pool, member)] = health

    def set_node_health(self, node: str, health: str) -> None:
        if health not in ("up", "down", "checking"):
            raise ValueError(f"health must be up, down or checking, not {health!r}")
        self.get("node", node, "Node")
        self.health[("", node)] = health

    # -- REST ------------------------------------------------------------------------------
    def handle(self, method: str, parts: list[str], params: list[tuple[str, str]],
               body: Any) -> Result:
        route = self._route(parts)
        query = Query.parse(params)
        if method in ("POST", "PUT", "PATCH"):
            if not isinstance(body, dict):
                raise IcrError(400, "Found invalid JSON body in the request.", API_REST)
            if not body:
                raise no_properties()
        handler: Callable[..., Result] = getattr(self, f"_h_{route[0]}")
        with self.atomic():
            status, out = handler(method, query, body, *route[1:])
        if isinstance(out, dict) and query.echo and "selfLink" in out:
            out["selfLink"] = out["selfLink"].replace("?ver=", f"?{query.echo}&ver=", 1)
        return status, out

    def check_shape(self, method: str, parts: list[str], body: Any) -> None:
        """What a device checks when a command is queued in a transaction."""
        route = self._route(parts)
        if method not in ("POST", "PUT", "PATCH"):
            return
        if not isinstance(body, dict):
            raise IcrError(400, "Found invalid JSON body in the request.", API_REST)
        if not body:
            raise no_properties()
        specs = {"pool": POOL, "node": NODE, "virtual": VIRTUAL}
        spec = specs.get(route[0])
        if route[0] == "members" and not route[3]:
            spec = MEMBER
        elif route[0] == "monitor":
            spec = monitor_spec(route[1])
        if spec is not None:
            check_fields(spec, body)
        if spec is POOL:
            for item in body.get("members") or []:
                item = item if isinstance(item, dict) else {"name": item}
                check_fields(MEMBER, item)
                names.parse_member(item.get("name"))

    def _route(self, parts: list[str]) -> tuple:
        p = parts
        n = len(p)
        where = "/tm/" + "/".join(p)
        if p[:1] == ["ltm"]:
            if n >= 2 and p[1] == "pool":
                if n == 2:
                    return ("pool", None)
                pool = names.segment_to_path(p[2])
                if n == 3:
                    return ("pool", pool)
                if p[3] == "members":
                    if n == 4:
                        return ("members", pool, None, False)
                    if n == 5:
                        return ("members", pool, None, True) if p[4] == "stats" else (
                            "members", pool, names.segment_to_path(p[4]), False)
                    if n == 6 and p[5] == "stats":
                        return ("members", pool, names.segment_to_path(p[4]), True)
            elif n >= 2 and p[1] in ("node", "virtual", "virtual-address") and n <= 3:
                return (p[1].replace("-", ""),
                        names.segment_to_path(p[2]) if n == 3 else None)
            elif n == 4 and p[1] == "virtual" and p[3] == "profiles":
                return ("profiles", names.segment_to_path(p[2]))
            elif n >= 3 and p[1] == "monitor" and p[2] in MONITOR_DEFAULTS and n <= 4:
                return ("monitor", p[2], names.segment_to_path(p[3]) if n == 4 else None)
        elif p[:2] == ["auth", "partition"] and n <= 3:
            return ("partition", p[2].lstrip("~") if n == 3 else None)
        elif p[:2] == ["sys", "folder"] and n <= 3:
            return ("folder", None if n == 2 else
                    "/" + "/".join(x for x in p[2].split("~") if x))
        raise uri_not_registered(where)

    # -- collections -----------------------------------------------------------------------
    def _collection(self, kind: str, path: str, items: list[dict[str, Any]],
                    query: Query) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": kind, "selfLink": names.link(path, self.version)}
        total = len(items)
        if query.skip or query.top is not None:
            end = None if query.top is None else query.skip + query.top
            items = items[query.skip:end]
            out.update({"currentItemCount": len(items), "itemsPerPage": query.top or total,
                        "pageIndex": 1 + (query.skip // query.top if query.top else 0),
                        "startIndex": query.skip + 1, "totalItems": total})
        if items:
            out["items"] = [_project(i, query.select) for i in items]
        return out

    @staticmethod
    def _one(obj: dict[str, Any], query: Query) -> Result:
        return 200, _project(obj, query.select)

    def _filtered(self, table: str, query: Query) -> list[dict[str, Any]]:
        return self.items(table, query.partition)

    # -- handlers --------------------------------------------------------------------------
    def _h_pool(self, method: str, q: Query, body: Any, pool: str | None) -> Result:
        if pool is None:
            if method == "GET":
                return 200, self._collection(
                    "tm:ltm:pool:poolcollectionstate", "tm/ltm/pool",
                    [self.render_pool(o, q.expand) for o in self._filtered("pool", q)], q)
            if method == "POST":
                return 200, self.render_pool(self.create_pool(body))
        elif method == "GET":
            return self._one(self.render_pool(self.get("pool", pool, "Pool"), q.expand), q)
        elif method in ("PATCH", "PUT"):
            return 200, self.render_pool(self.update_pool(pool, body, method == "PUT"))
        elif method == "DELETE":
            self.delete_pool(pool)
            return 200, None
        raise self._bad_method(method)

    def _h_members(self, method: str, q: Query, body: Any, pool: str, member: str | None,
                   stats: bool) -> Result:
        if stats:
            if method != "GET":
                raise self._bad_method(method)
            return 200, self.member_stats(pool, member)
        if member is None:
            if method == "GET":
                pool_obj = self.get("pool", pool, "Pool")
                items = [self.render_member(pool_obj, m) for m in self.pool_members(pool)]
                return 200, self._collection(
                    "tm:ltm:pool:members:memberscollectionstate",
                    f"tm/ltm/pool/{names.path_to_segment(pool)}/members", items, q)
            if method == "POST":
                obj = self.create_member(pool, body)
                return 200, self.render_member(self.tables["pool"][pool], obj)
        elif method == "GET":
            obj = self.member_or_404(pool, member)
            return self._one(self.render_member(self.tables["pool"][pool], obj), q)
        elif method in ("PATCH", "PUT"):
            obj = self.update_member(pool, member, body, method == "PUT")
            return 200, self.render_member(self.tables["pool"][pool], obj)
        elif method == "DELETE":
            self.delete_member(pool, member)
            self.conns.pop((pool, member), None)
            self.health.pop((pool, member), None)
            return 200, None
        raise self._bad_method(method)

    def _h_node(self, method: str, q: Query, body: Any, node: str | None) -> Result:
        return self._crud(method, q, body, node, "node", "Node", "tm:ltm:node",
                          self.render_node, self.create_node, self.update_node,
                          self.delete_node)

    def _h_virtual(self, method: str, q: Query, body: Any, vs: str | None) -> Result:
        return self._crud(method, q, body, vs, "virtual", "Virtual Server",
                          "tm:ltm:virtual", lambda o: self.render_virtual(o, q.expand),
                          self.create_virtual, self.update_virtual, self.delete_virtual)

    def _h_virtualaddress(self, method: str, q: Query, body: Any, va: str | None) -> Result:
        return self._crud(method, q, body, va, "vaddr", "Virtual Address",
                          "tm:ltm:virtual-address", self.render_vaddr, None, None, None)

    def _h_profiles(self, method: str, q: Query, body: Any, vs: str) -> Result:
        if method != "GET":
            raise self._bad_method(method)
        obj = self.get("virtual", vs, "Virtual Server")
        return 200, self._collection(
            "tm:ltm:virtual:profiles:profilescollectionstate",
            f"tm/ltm/virtual/{names.path_to_segment(vs)}/profiles",
            self.virtual_profiles(obj), q)

    def _h_monitor(self, method: str, q: Query, body: Any, mtype: str,
                   mon: str | None) -> Result:
        if mon is None and method == "GET":
            items = [self.render_monitor(o) for o in self._filtered("monitor", q)
                     if o["_type"] == mtype]
            return 200, self._collection(f"tm:ltm:monitor:{mtype}:{mtype}collectionstate",
                                         f"tm/ltm/monitor/{mtype}", items, q)
        if mon is None and method == "POST":
            return 200, self.render_monitor(self.create_monitor(mtype, body))
        if mon is not None and method == "GET":
            return self._one(self.render_monitor(self.monitor_of(mtype, mon)), q)
        if mon is not None and method in ("PATCH", "PUT"):
            return 200, self.render_monitor(self.update_monitor(mtype, mon, body,
                                                                method == "PUT"))
        if mon is not None and method == "DELETE":
            self.delete_monitor(mtype, mon)
            return 200, None
        raise self._bad_method(method)

    def _crud(self, method: str, q: Query, body: Any, key: str | None, table: str,
              label: str, kind: str, render: Callable, create: Callable | None,
              update: Callable | None, delete: Callable | None) -> Result:
        uri = kind.split(":", 1)[1].replace(":", "/")
        if key is None and method == "GET":
            return 200, self._collection(f"{kind}:{kind.rsplit(':', 1)[1]}collectionstate",
                                         f"tm/{uri}",
                                         [render(o) for o in self._filtered(table, q)], q)
        if key is None and method == "POST" and create:
            return 200, render(create(body))
        if key is not None and method == "GET":
            return self._one(render(self.get(table, key, label)), q)
        if key is not None and method in ("PATCH", "PUT") and update:
            return 200, render(update(key, body, method == "PUT"))
        if key is not None and method == "DELETE" and delete:
            delete(key)
            return 200, None
        raise self._bad_method(method)

    # -- partitions and folders --------------------------------------------------------------
    def render_partition(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = {"kind": "tm:auth:partition:partitionstate", "name": obj["name"],
               "fullPath": obj["name"], "generation": obj["generation"],
               "selfLink": names.link(f"tm/auth/partition/{obj['name']}", self.version),
               "defaultRouteDomain": obj.get("defaultRouteDomain", 0)}
        if obj.get("description"):
            out["description"] = obj["description"]
        return out

    def render_folder(self, obj: dict[str, Any]) -> dict[str, Any]:
        seg = "~" + "~".join(obj["fullPath"].strip("/").split("/")) if obj["fullPath"] != "/" \
            else "~"
        out = {"kind": "tm:sys:folder:folderstate", "name": obj["name"],
               "subPath": obj["subPath"], "fullPath": obj["fullPath"],
               "generation": obj["generation"],
               "selfLink": names.link(f"tm/sys/folder/{seg}", self.version),
               "deviceGroup": "none", "hidden": "false", "inheritedDevicegroup": "true",
               "inheritedTrafficGroup": "true", "noRefCheck": "false",
               "trafficGroup": "/Common/traffic-group-1"}
        if obj.get("description"):
            out["description"] = obj["description"]
        return out

    def _h_partition(self, method: str, q: Query, body: Any, name: str | None) -> Result:
        parts = [o for o in self.items("folder") if o["fullPath"].count("/") == 1]
        if name is None and method == "GET":
            return 200, self._collection("tm:auth:partition:partitioncollectionstate",
                                         "tm/auth/partition",
                                         [self.render_partition(o) for o in parts], q)
        if name is None and method == "POST":
            fields = {k: v for k, v in body.items()
                      if k in ("description", "defaultRouteDomain")}
            if "name" not in body:
                raise IcrError(400, "one or more configuration identifiers must be provided",
                               26214401)
            return 200, self.render_partition(self.add_folder(f"/{body['name']}", **fields))
        if name is not None:
            obj = self.tables["folder"].get(f"/{name}")
            if obj is None:
                raise not_found("partition", name)
            if method == "GET":
                return self._one(self.render_partition(obj), q)
            if method == "DELETE":
                self.delete_folder(f"/{name}")
                return 200, None
            if method in ("PATCH", "PUT"):
                new = dict(obj, generation=self.bump())
                if "description" in body:
                    new["description"] = body["description"]
                self.put("folder", obj["fullPath"], new)
                return 200, self.render_partition(new)
        raise self._bad_method(method)

    def _h_folder(self, method: str, q: Query, body: Any, path: str | None) -> Result:
        root = {"name": "/", "subPath": "/", "fullPath": "/", "generation": 1}
        if path is None and method == "GET":
            items = [self.render_folder(root)] + [self.render_folder(o)
                                                  for o in self.items("folder")]
            return 200, self._collection("tm:sys:folder:foldercollectionstate",
                                         "tm/sys/folder", items, q)
        if path is None and method == "POST":
            if "name" not in body:
                raise IcrError(400, "one or more configuration identifiers must be provided",
                               26214401)
            parent = body.get("subPath") or (f"/{body['partition']}"
                                             if body.get("partition") else "/")
            full = parent.rstrip("/") + "/" + str(body["name"])
            extra = {"description": body["description"]} if "description" in body else {}
            return 200, self.render_folder(self.add_folder(full, **extra))
        if path == "/" and method == "GET":
            return 200, self.render_folder(root)
        if path is not None:
            obj = self.tables["folder"].get(path)
            if obj is None:
                raise not_found("folder", path)
            if method == "GET":
                return self._one(self.render_folder(obj), q)
            if method == "DELETE":
                self.delete_folder(path)
                return 200, None
        raise self._bad_method(method)

    @staticmethod
    def _bad_method(method: str) -> IcrError:
        # [unverified] text
        return IcrError(400, f"Method {method} is not supported on this URI.", API_REST,
                        framework=True)

    def dump(self) -> dict[str, Any]:
        """Everything, rendered (tests and demos)."""
        return {"pools": {p["fullPath"]: dict(public(p), members=[
                    public(m) for m in self.pool_members(p["fullPath"])])
                    for p in self.items("pool")},
                "nodes": {n["fullPath"]: public(n) for n in self.items("node")},
                "monitors": {m["fullPath"]: public(m) for m in self.items("monitor")
                             if not m.get("_builtin")},
                "virtuals": {v["fullPath"]: public(v) for v in self.items("virtual")},
                "folders": sorted(self.tables["folder"])}
