"""Pools, pool members and nodes, as a Store mixin.

Members store the *written* admin state (``session`` user-enabled|user-disabled,
``state`` user-up|user-down); reads derive the device's values (monitor-enabled,
unchecked, up, ...) from it, the monitor and the health hook.
"""

from __future__ import annotations

from typing import Any

from . import names
from .errors import (IcrError, bad_value, create_only, duplicate, no_identifier,
                     not_found)
from .store import ENABLED, IDENTITY, YESNO, Spec, check_fields, public

LB_MODES = frozenset({
    "dynamic-ratio-member", "dynamic-ratio-node", "fastest-app-response", "fastest-node",
    "least-connections-member", "least-connections-node", "least-sessions",
    "observed-member", "observed-node", "predictive-member", "predictive-node",
    "ratio-least-connections-member", "ratio-least-connections-node", "ratio-member",
    "ratio-node", "ratio-session", "round-robin", "weighted-least-connections-member",
    "weighted-least-connections-node"})
U32 = (0, 4294967295)
POOL = Spec("Pool", "tm:ltm:pool:poolstate", {
    "allowNat": "yes", "allowSnat": "yes", "ignorePersistedWeight": "disabled",
    "ipTosToClient": "pass-through", "ipTosToServer": "pass-through",
    "linkQosToClient": "pass-through", "linkQosToServer": "pass-through",
    "loadBalancingMode": "round-robin", "minActiveMembers": 0, "minUpMembers": 0,
    "minUpMembersAction": "failover", "minUpMembersChecking": "disabled",
    "queueDepthLimit": 0, "queueOnConnectionLimit": "disabled", "queueTimeLimit": 0,
    "reselectTries": 0, "serviceDownAction": "none", "slowRampTime": 10},
    enums={"loadBalancingMode": LB_MODES, "allowNat": YESNO, "allowSnat": YESNO,
           "ignorePersistedWeight": ENABLED, "minUpMembersChecking": ENABLED,
           "queueOnConnectionLimit": ENABLED,
           "minUpMembersAction": frozenset({"failover", "reboot", "restart-all"}),
           "serviceDownAction": frozenset({"none", "reset", "drop", "reselect"})},
    ints={"minActiveMembers": (0, 65535), "minUpMembers": (0, 65535),
          "queueDepthLimit": U32, "queueTimeLimit": U32, "reselectTries": (0, 65535),
          "slowRampTime": U32},
    optional=frozenset({"description", "appService", "metadata"}),
    special=frozenset({"monitor", "members"}))
_ADDR_COMMON = {"connectionLimit": 0, "dynamicRatio": 1, "logging": "disabled",
                "monitor": "default", "rateLimit": "disabled", "ratio": 1,
                "session": "user-enabled", "state": "user-up"}
_ADDR_INTS = {"connectionLimit": (0, 2147483647), "dynamicRatio": (1, 65535),
              "ratio": (1, 65535)}
SESSIONS = frozenset({"user-enabled", "user-disabled"})
MEMBER = Spec("Pool Member", "tm:ltm:pool:members:membersstate",
              {**_ADDR_COMMON, "fqdn": {"autopopulate": "disabled"},
               "inheritProfile": "enabled", "priorityGroup": 0},
              enums={"session": SESSIONS, "state": frozenset({"user-up", "user-down"}),
                     "inheritProfile": ENABLED, "logging": ENABLED},
              ints={**_ADDR_INTS, "priorityGroup": (0, 65535)},
              optional=frozenset({"description", "appService", "metadata"}),
              special=frozenset({"address", "fqdn"}), create_only=IDENTITY | {"address"})
NODE = Spec("Node", "tm:ltm:node:nodestate",
            {**_ADDR_COMMON, "fqdn": {"addressFamily": "ipv4", "autopopulate": "disabled"}},
            enums={"session": SESSIONS, "logging": ENABLED,
                   "state": frozenset({"user-up", "user-down", "unchecked", "fqdn-up"})},
            ints=_ADDR_INTS, optional=frozenset({"description", "appService", "metadata"}),
            special=frozenset({"address", "fqdn"}), create_only=IDENTITY | {"address"})


def check_identity(current: dict[str, Any], fields: dict[str, Any], spec: Spec) -> None:
    for key in spec.create_only:
        if key in fields and fields[key] != current.get(key):
            if key == "subPath" and fields[key] in ("", None) and "subPath" not in current:
                continue
            raise create_only(key)


def admin_read(obj: dict[str, Any], monitored: bool, health: str) -> tuple[str, str]:
    """(session, state) as a device reports them, from the written values."""
    session = obj["session"]
    if session == "user-enabled" and monitored:
        session = "monitor-enabled"
    if obj["state"] == "user-down":
        return session, "user-down"
    return session, (health if monitored else "unchecked")


class PoolOps:
    """Mixin over Store: needs tables, members, node_refs, node_addrs, put, bump."""

    health: dict[tuple[str, str], str]
    conns: dict[tuple[str, str], int]

    # -- monitors as pools reference them -----------------------------------------------
    def monitor_rule(self, expr: Any, partition: str, key: str = "monitor") -> str | None:
        if not isinstance(expr, str):
            raise bad_value(key, expr)
        op, refs, minimum = names.monitor_refs(expr)
        paths = []
        for ref in refs:
            candidates = [ref] if ref.startswith("/") else [f"/{partition}/{ref}",
                                                            f"/Common/{ref}"]
            found = next((c for c in candidates if c in self.tables["monitor"]), None)
            if found is None:
                # [unverified] text
                raise IcrError(400, f"01020036:3: The requested monitor ({candidates[-1]}) "
                                    f"was not found.")
            paths.append(found)
        if op == "min" and not 1 <= (minimum or 0) <= len(paths):
            raise bad_value(key, expr)
        return names.monitor_rule(op, paths, minimum)

    # -- pools -------------------------------------------------------------------------
    def create_pool(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = check_fields(POOL, body)
        if "name" not in fields:
            raise no_identifier()
        name = names.check_name(fields["name"])
        partition = self.need_folder(fields.get("partition"), fields.get("subPath"))
        full = names.join_path(partition, fields.get("subPath"), name)
        if full in self.tables["pool"]:
            raise duplicate("Pool", full, partition)
        obj = {"name": name, "partition": partition, "fullPath": full}
        if fields.get("subPath"):
            obj["subPath"] = fields["subPath"].strip("/")
        self._write_pool(obj, fields, reset=True)
        return obj

    def update_pool(self, full: str, body: dict[str, Any], replace: bool) -> dict[str, Any]:
        current = self.get("pool", full, "Pool")
        fields = check_fields(POOL, body)
        check_identity(current, fields, POOL)
        obj = {k: current[k] for k in ("name", "partition", "fullPath", "subPath")
               if k in current} if replace else dict(current)
        self._write_pool(obj, fields, reset=replace)
        return obj

    def _write_pool(self, obj: dict[str, Any], fields: dict[str, Any], reset: bool) -> None:
        if reset:
            obj.update(POOL.defaults)
        obj.update({k: v for k, v in fields.items()
                    if k not in POOL.special and k not in IDENTITY})
        if "monitor" in fields:
            rule = self.monitor_rule(fields["monitor"], obj["partition"])
            obj.pop("monitor", None)
            if rule:
                obj["monitor"] = rule
        obj["generation"] = self.bump()
        self.put("pool", obj["fullPath"], obj)
        if "members" in fields:
            self._replace_members(obj, fields["members"])

    def delete_pool(self, full: str) -> None:
        self.get("pool", full, "Pool")
        for vs in self.items("virtual"):
            if vs.get("pool") == full:
                raise IcrError(400, f"01070265:3: The Pool ({full}) cannot be deleted because "
                                    f"it is in use by a Virtual Server ({vs['fullPath']}).")
        self.bump()
        for key in list(self.members.get(full, {})):
            self.put_member(full, key, None)
            self.conns.pop((full, key), None)
            self.health.pop((full, key), None)
        self.put("pool", full, None)

    def render_pool(self, obj: dict[str, Any], expand: bool = False) -> dict[str, Any]:
        seg = names.path_to_segment(obj["fullPath"])
        out = self.head(POOL.kind, obj, f"tm/ltm/pool/{seg}")
        ref = {"link": names.link(f"tm/ltm/pool/{seg}/members", self.version),
               "isSubcollection": True}
        if expand:
            ref["items"] = [self.render_member(obj, m) for m in self.pool_members(obj["fullPath"])]
        out["membersReference"] = ref
        return out

    def head(self, kind: str, obj: dict[str, Any], path: str) -> dict[str, Any]:
        out = {"kind": kind}
        out.update(public(obj))
        out["selfLink"] = names.link(path, self.version)
        return out

    # -- members -----------------------------------------------------------------------
    def _pool_or_404(self, pool: str) -> dict[str, Any]:
        obj = self.tables["pool"].get(pool)
        if obj is None:
            raise IcrError(404, f"01020036:3: The requested pool ({pool}) was not found.")
        return obj

    def member_or_404(self, pool: str, member: str) -> dict[str, Any]:
        self.get("pool", pool, "Pool")
        obj = self.members.get(pool, {}).get(member)
        if obj is None:
            raise not_found("Pool Member", f"{pool} {self._describe(member)}")
        return obj

    @staticmethod
    def _describe(member_path: str) -> str:
        partition, _, name = names.split_path(member_path)
        try:
            return names.parse_member(name).describe(partition)
        except IcrError:
            return member_path

    def create_member(self, pool: str, body: dict[str, Any]) -> dict[str, Any]:
        pool_obj = self._pool_or_404(pool)
        obj = self._build_member(pool_obj, body, self.bump())
        if obj["fullPath"] in self.members.get(pool, {}):
            partition = obj["partition"]
            raise IcrError(409, f"01020066:3: The requested Pool Member ({pool} "
                                f"{self._describe(obj['fullPath'])}) already exists in "
                                f"partition {partition}.")
        self.put_member(pool, obj["fullPath"], obj)
        return obj

    def update_member(self, pool: str, member: str, body: dict[str, Any],
                      replace: bool) -> dict[str, Any]:
        pool_obj = self.get("pool", pool, "Pool")
        current = self.member_or_404(pool, member)
        fields = check_fields(MEMBER, body)
        check_identity(current, fields, MEMBER)
        obj = dict(current)
        if replace:
            obj.update(MEMBER.defaults)
            obj.pop("description", None)
        self._member_fields(obj, fields, pool_obj["partition"])
        obj["generation"] = self.bump()
        self.put_member(pool, member, obj)
        return obj

    def delete_member(self, pool: str, member: str) -> None:
        self.member_or_404(pool, member)
        self.bump()
        self.put_member(pool, member, None)

    def _member_fields(self, obj: dict[str, Any], fields: dict[str, Any], part: str) -> None:
        for key, value in fields.items():
            if key in MEMBER.create_only:
                continue
            if key == "monitor":
                value = "default" if value == "default" else (
                    self.monitor_rule(value, part) or "default")
            if key == "fqdn":
                if not isinstance(value, dict):
                    raise bad_value(key, value)
                value = {**MEMBER.defaults["fqdn"], **value}
            obj[key] = value

    def _build_member(self, pool_obj: dict[str, Any], item: Any, gen: int) -> dict[str, Any]:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise bad_value("members", item)
        fields = check_fields(MEMBER, item)
        if "name" not in fields:
            raise no_identifier()
        parsed = names.parse_member(fields["name"])
        partition = fields.get("partition") or pool_obj["partition"]
        if f"/{partition}" not in self.tables["folder"]:
            port = names.PORT_NAMES.get(parsed.port, parsed.port)
            raise IcrError(400, f"01070734:3: Configuration error: Can't associate Pool Member "
                                f"(/{partition}/{pool_obj['name']} /{partition}/{parsed.node} "
                                f"{port}) folder does not exist")
        node = self._member_node(f"/{partition}/{parsed.node}", parsed.node,
                                 fields.get("address"), gen)
        full = f"/{partition}/{parsed.name}"
        obj = {"name": parsed.name, "partition": partition, "fullPath": full,
               "generation": gen, "address": node["address"], **MEMBER.defaults,
               "_node": node["fullPath"]}
        self._member_fields(obj, fields, pool_obj["partition"])
        return obj

    def _member_node(self, node_path: str, node_name: str, address: Any,
                     gen: int) -> dict[str, Any]:
        node = self.tables["node"].get(node_path)
        if node is not None:
            if address not in (None, node["address"]):
                raise bad_value("address", address)
            return node
        if names.is_ip(node_name):
            if address not in (None, node_name):
                raise bad_value("address", address)
            address = node_name
        elif address is None:
            # [unverified] text
            raise IcrError(400, f"01070734:3: Configuration error: Node ({node_path}) does not "
                                f"exist and no address was given for pool member "
                                f"{node_name}.")
        return self._new_node(node_path, address, {}, gen)

    def replace_members(self, pool: str, items: Any) -> None:
        self._replace_members(self.get("pool", pool, "Pool"), items)

    def _replace_members(self, pool_obj: dict[str, Any], items: Any) -> None:
        """Inline ``members`` = tmsh ``replace-all-with``: the set becomes exactly this."""
        if not isinstance(items, list):
            raise bad_value("members", items)
        pool = pool_obj["fullPath"]
        wanted: dict[str, dict[str, Any]] = {}
        for item in items:
            obj = self._build_member(pool_obj, item, pool_obj["generation"])
            wanted[obj["fullPath"]] = obj
        for key in list(self.members.get(pool, {})):
            if key not in wanted:
                self.put_member(pool, key, None)
                self.conns.pop((pool, key), None)
                self.health.pop((pool, key), None)
        for key, obj in wanted.items():
            self.put_member(pool, key, obj)

    def render_member(self, pool_obj: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
        pool = pool_obj["fullPath"]
        path = (f"tm/ltm/pool/{names.path_to_segment(pool)}/members/"
                f"{names.path_to_segment(m['fullPath'])}")
        out = self.head(MEMBER.kind, m, path)
        monitored = m["monitor"] != "default" or "monitor" in pool_obj
        out["session"], out["state"] = admin_read(
            m, monitored, self.health.get((pool, m["fullPath"]), "up"))
        out["ephemeral"] = "false"
        return out

    # -- nodes -------------------------------------------------------------------------
    def _new_node(self, full: str, address: Any, fields: dict[str, Any],
                  gen: int) -> dict[str, Any]:
        if not isinstance(address, str) or not (names.is_ip(address) or address == "any6"):
            raise bad_value("address", address)
        owner = self.node_addrs.get(address)
        if names.is_ip(address) and owner is not None:
            bare = address.split("%", 1)[0]
            raise IcrError(400, f"0107176c:3: Invalid Node, the IP address {bare} already "
                                f"exists.")
        partition, _, name = names.split_path(full)
        obj = {"name": name, "partition": partition, "fullPath": full, "generation": gen,
               "address": address, **NODE.defaults}
        self._node_fields(obj, fields)
        self.put("node", full, obj)
        return obj

    @staticmethod
    def _node_fields(obj: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key in NODE.create_only:
                continue
            if key == "state" and value in ("unchecked", "fqdn-up"):
                value = "user-up"
            if key == "fqdn":
                if not isinstance(value, dict):
                    raise bad_value(key, value)
                value = {**NODE.defaults["fqdn"], **value}
            obj[key] = value

    def create_node(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = check_fields(NODE, body)
        if "name" not in fields:
            raise no_identifier()
        name = names.check_name(fields["name"])
        partition = self.need_folder(fields.get("partition"), fields.get("subPath"))
        full = names.join_path(partition, fields.get("subPath"), name)
        if full in self.tables["node"]:
            raise duplicate("Node", full, partition)
        if "address" not in fields and "fqdn" not in fields:
            # [unverified] text
            raise IcrError(400, "01070734:3: Configuration error: A node must have an "
                                "address or an FQDN.")
        address = fields.get("address", "any6")
        if "monitor" in fields and fields["monitor"] != "default":
            fields["monitor"] = self.monitor_rule(fields["monitor"], partition) or "default"
        return self._new_node(full, address, fields, self.bump())

    def update_node(self, full: str, body: dict[str, Any], replace: bool) -> dict[str, Any]:
        current = self.get("node", full, "Node")
        fields = check_fields(NODE, body)
        check_identity(current, fields, NODE)
        obj = dict(current)
        if replace:
            obj.update(NODE.defaults)
            obj.pop("description", None)
        if "monitor" in fields and fields["monitor"] != "default":
            fields["monitor"] = self.monitor_rule(fields["monitor"], obj["partition"]) or "default"
        self._node_fields(obj, fields)
        obj["generation"] = self.bump()
        self.put("node", full, obj)
        return obj

    def delete_node(self, full: str) -> None:
        self.get("node", full, "Node")
        refs = self.node_refs.get(full)
        if refs:
            raise IcrError(400, f"01070110:3: Node address '{full}' is referenced by a member "
                                f"of pool '{min(refs)}'.")
        self.bump()
        self.put("node", full, None)

    def render_node(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = self.head(NODE.kind, obj, f"tm/ltm/node/{names.path_to_segment(obj['fullPath'])}")
        monitored = obj["monitor"] not in ("default", "none")
        out["session"], out["state"] = admin_read(
            obj, monitored, self.health.get(("", obj["fullPath"]), "up"))
        out["ephemeral"] = "false"
        return out
