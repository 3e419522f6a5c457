"""Monitors, virtual servers and virtual addresses, as a Store mixin."""

from __future__ import annotations

from typing import Any

from . import names
from .errors import IcrError, bad_value, duplicate, no_identifier
from .pools import check_identity
from .store import ENABLED, IDENTITY, Spec, check_fields

_MON_COMMON = {"destination": "*:*", "interval": 5, "timeout": 16, "timeUntilUp": 0,
               "upInterval": 0, "manualResume": "disabled", "transparent": "disabled",
               "adaptive": "disabled", "ipDscp": 0}
_MON_INTS = {"interval": (1, 86400), "timeout": (1, 86400), "timeUntilUp": (0, 86400),
             "upInterval": (0, 86400), "ipDscp": (0, 63)}
_MON_ENUMS = {"manualResume": ENABLED, "transparent": ENABLED, "adaptive": ENABLED,
              "reverse": ENABLED}
_HTTP = {**_MON_COMMON, "send": "GET /\\r\\n", "reverse": "disabled"}
_SEND = frozenset({"description", "recv", "recvDisable", "username", "password",
                   "appService", "metadata"})
MONITOR_DEFAULTS: dict[str, tuple[dict[str, Any], frozenset]] = {
    "http": (_HTTP, _SEND), "http2": (_HTTP, _SEND),
    "https": ({**_HTTP, "cipherlist": "DEFAULT", "compatibility": "enabled"},
              _SEND | {"cert", "key", "sslProfile"}),
    "tcp": ({**_MON_COMMON, "send": "", "reverse": "disabled"}, _SEND),
    "udp": ({**_MON_COMMON, "send": "default send string", "reverse": "disabled"}, _SEND),
    "tcp-half-open": (_MON_COMMON, frozenset({"description", "appService"})),
    "gateway-icmp": (_MON_COMMON, frozenset({"description", "appService"})),
    "icmp": (_MON_COMMON, frozenset({"description", "appService"})),
}
BUILTIN_MONITORS = {"http": "http", "https": "https", "http2": "http2", "tcp": "tcp",
                    "udp": "udp", "tcp_half_open": "tcp-half-open",
                    "gateway_icmp": "gateway-icmp", "icmp": "icmp"}


def monitor_spec(mtype: str) -> Spec:
    defaults, optional = MONITOR_DEFAULTS[mtype]
    return Spec("Monitor", f"tm:ltm:monitor:{mtype}:{mtype}state", defaults,
                enums={k: v for k, v in _MON_ENUMS.items() if k in defaults},
                ints=_MON_INTS, optional=optional, special=frozenset({"defaultsFrom"}))


VIRTUAL = Spec("Virtual Server", "tm:ltm:virtual:virtualstate", {
    "addressStatus": "yes", "autoLasthop": "default", "cmpEnabled": "yes",
    "connectionLimit": 0, "evictionProtected": "disabled", "gtmScore": 0,
    "ipProtocol": "tcp", "mask": "255.255.255.255", "mirror": "disabled",
    "mobileAppTunnel": "disabled", "nat64": "disabled", "rateLimit": "disabled",
    "rateLimitDstMask": 0, "rateLimitMode": "object", "rateLimitSrcMask": 0,
    "serviceDownImmediateAction": "none", "source": "0.0.0.0/0",
    "sourceAddressTranslation": {"type": "none"}, "sourcePort": "preserve",
    "synCookieStatus": "not-activated", "translateAddress": "enabled",
    "translatePort": "enabled"},
    enums={"ipProtocol": frozenset({"tcp", "udp", "sctp", "any", "icmp", "icmpv6"}),
           "translateAddress": ENABLED, "translatePort": ENABLED,
           "sourcePort": frozenset({"preserve", "preserve-strict", "change"})},
    ints={"connectionLimit": (0, 2147483647)},
    optional=frozenset({"description", "persist", "rules", "vlans", "policies",
                        "fallbackPersistence", "metadata", "appService",
                        "securityLogProfiles"}),
    special=frozenset({"destination", "pool", "profiles", "enabled", "disabled",
                       "vlansEnabled", "vlansDisabled"}))
VADDR_DEFAULTS = {"arp": "enabled", "autoDelete": "true", "connectionLimit": 0,
                  "enabled": "yes", "floating": "enabled", "icmpEcho": "enabled",
                  "inheritedTrafficGroup": "false", "routeAdvertisement": "disabled",
                  "serverScope": "any", "spanning": "disabled",
                  "trafficGroup": "/Common/traffic-group-1", "unit": 1}


class ObjectOps:
    """Mixin over Store + PoolOps."""

    def add_builtin_monitors(self) -> None:
        for name, mtype in BUILTIN_MONITORS.items():
            defaults, _ = MONITOR_DEFAULTS[mtype]
            self.put("monitor", f"/Common/{name}", {
                "name": name, "partition": "Common", "fullPath": f"/Common/{name}",
                "generation": 0, **defaults, "_type": mtype, "_builtin": True})

    # -- monitors ----------------------------------------------------------------------
    def monitor_of(self, mtype: str, full: str) -> dict[str, Any]:
        obj = self.tables["monitor"].get(full)
        if obj is None or obj["_type"] != mtype:
            raise IcrError(404, f"01020036:3: The requested Monitor ({full}) was not found.")
        return obj

    def create_monitor(self, mtype: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = monitor_spec(mtype)
        fields = check_fields(spec, body)
        if "name" not in fields:
            raise no_identifier()
        name = names.check_name(fields["name"])
        partition = self.need_folder(fields.get("partition"), fields.get("subPath"))
        full = names.join_path(partition, fields.get("subPath"), name)
        if full in self.tables["monitor"]:
            raise duplicate("Monitor", full, partition)
        parent_path = names.resolve(fields.get("defaultsFrom") or f"/Common/{mtype}", partition)
        if mtype in ("tcp-half-open", "gateway-icmp") and "defaultsFrom" not in fields:
            parent_path = f"/Common/{mtype.replace('-', '_')}"
        parent = self.tables["monitor"].get(parent_path)
        if parent is None or parent["_type"] != mtype:
            raise IcrError(400, f"01020036:3: The requested monitor ({parent_path}) was not "
                                f"found.")
        obj = {"name": name, "partition": partition, "fullPath": full}
        if fields.get("subPath"):
            obj["subPath"] = fields["subPath"].strip("/")
        obj.update({k: v for k, v in parent.items() if k in spec.defaults or k in spec.optional})
        obj["defaultsFrom"] = parent_path
        obj.update({k: v for k, v in fields.items() if k not in IDENTITY | {"defaultsFrom"}})
        obj.update({"generation": self.bump(), "_type": mtype})
        self.put("monitor", full, obj)
        return obj

    def update_monitor(self, mtype: str, full: str, body: dict[str, Any],
                       replace: bool) -> dict[str, Any]:
        current = self.monitor_of(mtype, full)
        self._not_builtin(current, "modify")
        spec = monitor_spec(mtype)
        fields = check_fields(spec, body)
        check_identity(current, fields, spec)
        if fields.get("defaultsFrom", current["defaultsFrom"]) != current["defaultsFrom"]:
            raise bad_value("defaultsFrom", fields["defaultsFrom"])
        obj = dict(current)
        if replace:
            obj.update(spec.defaults)
            for key in spec.optional:
                obj.pop(key, None)
        obj.update({k: v for k, v in fields.items() if k not in IDENTITY | {"defaultsFrom"}})
        obj["generation"] = self.bump()
        self.put("monitor", full, obj)
        return obj

    def delete_monitor(self, mtype: str, full: str) -> None:
        self._not_builtin(self.monitor_of(mtype, full), "delete")
        users = [o.get("monitor", "") for o in self.tables["pool"].values()]
        users += [o["monitor"] for o in self.tables["node"].values()]
        users += [m["monitor"] for ms in self.members.values() for m in ms.values()]
        if any(full in rule.replace("{", " ").replace("}", " ").split() for rule in users):
            raise IcrError(400, f"01070083:3: Monitor {full} is in use.")
        self.bump()
        self.put("monitor", full, None)

    @staticmethod
    def _not_builtin(obj: dict[str, Any], verb: str) -> None:
        if obj.get("_builtin"):
            # [unverified] text
            raise IcrError(400, f"01070711:3: Cannot {verb} the built-in monitor "
                                f"{obj['fullPath']}.")

    def render_monitor(self, obj: dict[str, Any]) -> dict[str, Any]:
        mtype = obj["_type"]
        return self.head(monitor_spec(mtype).kind, obj,
                         f"tm/ltm/monitor/{mtype}/{names.path_to_segment(obj['fullPath'])}")

    # -- virtual servers -----------------------------------------------------------------
    def create_virtual(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = check_fields(VIRTUAL, body)
        if "name" not in fields:
            raise no_identifier()
        name = names.check_name(fields["name"])
        partition = self.need_folder(fields.get("partition"), fields.get("subPath"))
        full = names.join_path(partition, fields.get("subPath"), name)
        if full in self.tables["virtual"]:
            raise duplicate("Virtual Server", full, partition)
        if "destination" not in fields:
            # [unverified] text
            raise IcrError(400, f"01070734:3: Configuration error: Virtual server {full} "
                                f"requires a destination.")
        obj = {"name": name, "partition": partition, "fullPath": full, **VIRTUAL.defaults,
               "_profiles": ["/Common/fastL4"], "_disabled": False, "vlansDisabled": True,
               "vsIndex": len(self.tables["virtual"]) + self.generation}
        if fields.get("subPath"):
            obj["subPath"] = fields["subPath"].strip("/")
        self._virtual_fields(obj, fields)
        return obj

    def update_virtual(self, full: str, body: dict[str, Any], replace: bool) -> dict[str, Any]:
        current = self.get("virtual", full, "Virtual Server")
        fields = check_fields(VIRTUAL, body)
        check_identity(current, fields, VIRTUAL)
        obj = dict(current)
        if replace:
            obj.update(VIRTUAL.defaults)
            for key in VIRTUAL.optional | {"pool"}:
                obj.pop(key, None)
            obj.update({"_disabled": False, "vlansDisabled": True})
            obj.pop("vlansEnabled", None)
        self._virtual_fields(obj, fields)
        return obj

    def _virtual_fields(self, obj: dict[str, Any], fields: dict[str, Any]) -> None:
        partition = obj["partition"]
        old_vaddr = obj.get("_vaddr")
        for key, value in fields.items():
            if key in IDENTITY:
                continue
            if key == "destination":
                obj["destination"], obj["_vaddr"] = names.normalize_destination(value, partition)
            elif key == "pool":
                if value in ("none", "", None):
                    obj.pop("pool", None)
                    continue
                path = names.resolve(str(value), partition)
                if path not in self.tables["pool"]:
                    # [unverified] text
                    raise IcrError(400, f"01070226:3: Pool {path} does not exist.")
                obj["pool"] = path
            elif key == "profiles":
                obj["_profiles"] = [self._profile_path(p, partition) for p in value or []]
            elif key in ("enabled", "disabled"):
                if not isinstance(value, bool):
                    raise bad_value(key, value)
                obj["_disabled"] = (key == "disabled") == value
            elif key in ("vlansEnabled", "vlansDisabled"):
                enabled = (key == "vlansEnabled") == bool(value)
                obj.pop("vlansEnabled", None)
                obj.pop("vlansDisabled", None)
                obj["vlansEnabled" if enabled else "vlansDisabled"] = True
            else:
                obj[key] = value
        obj["generation"] = self.bump()
        self.put("virtual", obj["fullPath"], obj)
        self._sync_vaddr(obj["_vaddr"], obj.get("mask", "255.255.255.255"))
        if old_vaddr and old_vaddr != obj["_vaddr"]:
            self._sync_vaddr(old_vaddr, None)

    @staticmethod
    def _profile_path(profile: Any, partition: str) -> str:
        name = profile.get("name") if isinstance(profile, dict) else profile
        if not isinstance(name, str) or not name:
            raise bad_value("profiles", profile)
        return names.resolve(name, partition)

    def _sync_vaddr(self, path: str, mask: str | None) -> None:
        used = any(v.get("_vaddr") == path for v in self.tables["virtual"].values())
        exists = path in self.tables["vaddr"]
        if used and not exists:
            partition, _, name = names.split_path(path)
            self.put("vaddr", path, {"name": name, "partition": partition, "fullPath": path,
                                     "generation": self.generation, "address": name,
                                     **VADDR_DEFAULTS, "mask": mask or "255.255.255.255"})
        elif not used and exists:
            self.put("vaddr", path, None)

    def delete_virtual(self, full: str) -> None:
        obj = self.get("virtual", full, "Virtual Server")
        self.bump()
        self.put("virtual", full, None)
        self._sync_vaddr(obj["_vaddr"], None)

    def render_virtual(self, obj: dict[str, Any], expand: bool = False) -> dict[str, Any]:
        path = f"tm/ltm/virtual/{names.path_to_segment(obj['fullPath'])}"
        out = self.head(VIRTUAL.kind, obj, path)
        out["enabled" if not obj["_disabled"] else "disabled"] = True
        if "pool" in obj:
            out["poolReference"] = {"link": names.link(
                f"tm/ltm/pool/{names.path_to_segment(obj['pool'])}", self.version)}
        ref = {"link": names.link(f"{path}/profiles", self.version), "isSubcollection": True}
        if expand:
            ref["items"] = self.virtual_profiles(obj)
        out["profilesReference"] = ref
        return out

    def virtual_profiles(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"tm/ltm/virtual/{names.path_to_segment(obj['fullPath'])}/profiles"
        out = []
        for profile in obj["_profiles"]:
            partition, _, name = names.split_path(profile)
            out.append({"kind": "tm:ltm:virtual:profiles:profilesstate", "name": name,
                        "partition": partition, "fullPath": profile,
                        "generation": obj["generation"], "context": "all",
                        "selfLink": names.link(f"{path}/{names.path_to_segment(profile)}",
                                               self.version)})
        return out

    def render_vaddr(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.head("tm:ltm:virtual-address:virtual-addressstate", obj,
                         f"tm/ltm/virtual-address/{names.path_to_segment(obj['fullPath'])}")
