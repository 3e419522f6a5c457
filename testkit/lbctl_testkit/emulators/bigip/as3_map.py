"""Map one AS3 tenant onto the LTM model (docs/upstream.md#big-ip-as3: each tenant is a partition).

Tenant ``T`` is partition ``/T``; application ``A`` is folder ``/T/A``.  Pools,
members, monitors and ``Service_*`` virtuals are built with the same LTM calls
iControl REST uses, so every device rule (node address clashes, unknown
monitors, ratio ranges) applies and its mcpd message becomes the tenant's
``response``.  Other AS3 classes are kept in the declaration but not reflected.
"""

from __future__ import annotations

from typing import Any

from .errors import IcrError

BUILTIN = {"http": "/Common/http", "https": "/Common/https", "http2": "/Common/http2",
           "tcp": "/Common/tcp", "udp": "/Common/udp", "icmp": "/Common/gateway_icmp",
           "tcp-half-open": "/Common/tcp_half_open"}
MONITOR_TYPES = {"http": "http", "https": "https", "http2": "http2", "tcp": "tcp",
                 "udp": "udp", "icmp": "gateway-icmp", "tcp-half-open": "tcp-half-open"}
ADMIN = {"enable": ("user-enabled", "user-up"), "disable": ("user-disabled", "user-up"),
         "offline": ("user-disabled", "user-down")}
SERVICES = {"Service_HTTP": (80, "tcp", ["/Common/http", "/Common/tcp"]),
            "Service_HTTPS": (443, "tcp", ["/Common/http", "/Common/tcp"]),
            "Service_TCP": (None, "tcp", ["/Common/tcp"]),
            "Service_UDP": (None, "udp", ["/Common/udp"]),
            "Service_L4": (None, "tcp", ["/Common/fastL4"]),
            "Service_Generic": (None, "tcp", ["/Common/tcp"])}
RESERVED = {"class", "label", "remark", "template", "schemaOverlay", "enable", "constants",
            "serviceMain_", "controls", "defaultRouteDomain", "optimisticLockKey",
            "verifiers", "useCommonRouteDomainTenant"}


def not_emulated(what: str) -> IcrError:
    return IcrError(422, f"lbctl BIG-IP emulator: {what} is not emulated")


def apps_of(tenant: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tenant.items()
            if isinstance(v, dict) and v.get("class") == "Application"}


def clear_partition(ltm: Any, partition: str, keep_partition: bool) -> None:
    """Delete everything AS3 owns for a tenant, in dependency order.

    Tenant ``Common`` owns only ``/Common/Shared`` (AS3's rule).
    """
    root = "/Common/Shared" if partition == "Common" else f"/{partition}"
    prefix = root + "/"
    for vs in [v for v in ltm.items("virtual") if v["fullPath"].startswith(prefix)]:
        ltm.delete_virtual(vs["fullPath"])
    for pool in [p for p in ltm.items("pool") if p["fullPath"].startswith(prefix)]:
        ltm.delete_pool(pool["fullPath"])
    for mon in [m for m in ltm.items("monitor") if m["fullPath"].startswith(prefix)]:
        ltm.delete_monitor(mon["_type"], mon["fullPath"])
    for node in [n for n in ltm.items("node") if n["fullPath"].startswith(prefix)]:
        ltm.delete_node(node["fullPath"])
    folders = [f for f in ltm.tables["folder"] if f.startswith(prefix)]
    for folder in sorted(folders, key=lambda f: -f.count("/")):
        ltm.delete_folder(folder)
    if not keep_partition and root in ltm.tables["folder"]:
        ltm.delete_folder(root)


def build_tenant(ltm: Any, tenant: str, body: dict[str, Any]) -> int:
    """Create the tenant's objects; returns how many were made (the 'lineCount')."""
    if f"/{tenant}" not in ltm.tables["folder"]:
        ltm.add_folder(f"/{tenant}")
    count = 0
    for app_name, app in apps_of(body).items():
        if f"/{tenant}/{app_name}" not in ltm.tables["folder"]:
            ltm.add_folder(f"/{tenant}/{app_name}")
        items = {k: v for k, v in app.items() if isinstance(v, dict) and "class" in v}
        for name, item in items.items():
            if item["class"] == "Monitor":
                _monitor(ltm, tenant, app_name, name, item)
                count += 1
        for name, item in items.items():
            if item["class"] == "Pool":
                _pool(ltm, tenant, app_name, name, item)
                count += 1 + len(item.get("members", []))
        for name, item in items.items():
            if item["class"] in SERVICES:
                count += _service(ltm, tenant, app_name, name, item)
            elif item["class"] == "Endpoint_Policy":
                _policy_pools(tenant, app_name, name, item, items)
    return count


def _policy_pools(tenant: str, app: str, name: str, item: dict[str, Any], items: dict[str, Any]) -> None:
    """An endpoint policy is kept, not reflected, but, as AS3 does, its pool pointers must
    name pools of the application (AS3 refuses the declaration otherwise)."""
    for i, rule in enumerate(item.get("rules") or []):
        for j, action in enumerate(rule.get("actions") or []):
            pool = ((action.get("select") or {}).get("pool") or {}).get("use")
            if pool is not None and (items.get(pool) or {}).get("class") != "Pool":
                raise IcrError(422, f"declaration is invalid: /{tenant}/{app}/{name}/rules/{i}/actions/{j}/select/pool:"
                                    f" Unable to find /{tenant}/{app}/{pool}")


def _ref(ref: Any, tenant: str, app: str, builtin: dict[str, str]) -> str:
    if isinstance(ref, str):
        return builtin.get(ref) or _use(ref, tenant, app)
    if isinstance(ref, dict) and "bigip" in ref:
        return ref["bigip"]
    if isinstance(ref, dict) and "use" in ref:
        return _use(ref["use"], tenant, app)
    raise not_emulated(f"reference {ref!r}")


def _use(ref: str, tenant: str, app: str) -> str:
    if ref.startswith("/"):
        return ref
    if "/" in ref:
        return f"/{tenant}/{ref}"
    return f"/{tenant}/{app}/{ref}"


def _monitor(ltm: Any, tenant: str, app: str, name: str, item: dict[str, Any]) -> None:
    mtype = MONITOR_TYPES.get(item["monitorType"])
    if mtype is None:
        raise not_emulated(f"Monitor type {item['monitorType']!r}")
    body: dict[str, Any] = {"name": name, "partition": tenant, "subPath": app}
    for src, dst in (("send", "send"), ("receive", "recv"), ("receiveDown", "recvDisable"),
                     ("interval", "interval"), ("timeout", "timeout"),
                     ("remark", "description")):
        if src in item:
            body[dst] = item[src]
    if "targetAddress" in item or "targetPort" in item:
        body["destination"] = f"{item.get('targetAddress') or '*'}:{item.get('targetPort') or '*'}"
    ltm.create_monitor(mtype, body)


def _monitor_rule(refs: list[Any], minimum: Any, tenant: str, app: str) -> str:
    paths = [_ref(r, tenant, app, BUILTIN) for r in refs]
    if len(paths) == 1:
        return paths[0]
    if minimum == "all":
        return " and ".join(paths)
    return f"min {minimum or 1} of {{ {' '.join(paths)} }}"


def _pool(ltm: Any, tenant: str, app: str, name: str, item: dict[str, Any]) -> None:
    body: dict[str, Any] = {
        "name": name, "partition": tenant, "subPath": app,
        "loadBalancingMode": item.get("loadBalancingMode", "round-robin"),
        "minActiveMembers": item.get("minimumMembersActive", 1),
        "reselectTries": item.get("reselectTries", 0),
        "serviceDownAction": item.get("serviceDownAction", "none"),
        "slowRampTime": item.get("slowRampTime", 10),
        "allowNat": "yes" if item.get("allowNATEnabled", True) else "no",
        "allowSnat": "yes" if item.get("allowSNATEnabled", True) else "no"}
    if item.get("remark"):
        body["description"] = item["remark"]
    if item.get("monitors"):
        body["monitor"] = _monitor_rule(item["monitors"], item.get("minimumMonitors"),
                                        tenant, app)
    body["members"] = [m for member in item.get("members", [])
                       for m in _members(tenant, app, member)]
    ltm.create_pool(body)


def _members(tenant: str, app: str, member: dict[str, Any]) -> list[dict[str, Any]]:
    discovery = member.get("addressDiscovery", "static")
    port = member["servicePort"]
    partition = "Common" if member.get("shareNodes") else tenant
    session, state = ADMIN[member.get("adminState", "enable")]
    if member.get("enable") is False:
        session = "user-disabled"
    common: dict[str, Any] = {
        "partition": partition, "session": session, "state": state,
        "ratio": member.get("ratio", 1), "priorityGroup": member.get("priorityGroup", 0),
        "connectionLimit": member.get("connectionLimit", 0),
        "dynamicRatio": member.get("dynamicRatio", 1),
        "rateLimit": "disabled" if member.get("rateLimit", -1) < 0
        else str(member["rateLimit"])}
    if member.get("remark"):
        common["description"] = member["remark"]
    if member.get("monitors"):
        common["monitor"] = _monitor_rule(member["monitors"], member.get("minimumMonitors"),
                                          tenant, app)
    rd = f"%{member['routeDomain']}" if member.get("routeDomain") else ""
    out = []
    if discovery == "static":
        for addr in member.get("serverAddresses", []):
            sep = "." if ":" in addr else ":"
            out.append({**common, "name": f"{addr}{rd}{sep}{port}"})
        for server in member.get("servers", []):
            out.append({**common, "name": f"{server['name']}:{port}",
                        "address": f"{server['address']}{rd}"})
    elif discovery == "bigip" or "bigip" in member:
        node = member["bigip"]
        out.append({**common, "partition": node.strip("/").split("/")[0],
                    "name": f"{node.rsplit('/', 1)[1]}:{port}"})
    else:
        raise not_emulated(f"addressDiscovery {discovery!r}")
    return out


def _service(ltm: Any, tenant: str, app: str, name: str, item: dict[str, Any]) -> int:
    default_port, protocol, profiles = SERVICES[item["class"]]
    port = item.get("virtualPort", default_port)
    if port is None:
        raise not_emulated(f"{item['class']} without virtualPort")
    made = 0
    for i, addr in enumerate(item.get("virtualAddresses", [])):
        mask = None
        if isinstance(addr, list):
            addr, mask = addr[0], (addr[1] if len(addr) > 1 else None)
        if not isinstance(addr, str):
            raise not_emulated("virtualAddresses given as references")
        sep = "." if ":" in addr else ":"
        body: dict[str, Any] = {
            "name": name if i == 0 else f"{name}-{i}-", "partition": tenant, "subPath": app,
            "destination": f"/{tenant}/{addr}{sep}{port}", "ipProtocol": protocol,
            "profiles": [{"name": p} for p in profiles],
            "sourceAddressTranslation": {"type": "automap" if item.get("snat", "auto") ==
                                         "auto" else "none"}}
        if mask and "/" not in mask and mask != "any":
            body["mask"] = mask
        if item.get("pool"):
            body["pool"] = _ref(item["pool"], tenant, app, {})
        if item.get("enable") is False:
            body["disabled"] = True
        if item.get("remark"):
            body["description"] = item["remark"]
        ltm.create_virtual(body)
        made += 1
    return made
