"""AS3: lbctl's pools and monitors as one declaration per tenant, read back
from one, and checked against F5's AS3 schema (``lbctl/data/as3-schema.json``,
Apache-2.0).  Pure: no network; the schema is read from the package once.

Tenant ``T`` holds one application ``A`` (``lbctl``; ``Shared`` in tenant
``Common``).  On the device, pool ``web`` becomes ``/T/A/web``.
"""

from __future__ import annotations

import functools
import json
import threading
from importlib import resources
from typing import Any, Mapping

from lbctl import model
from lbctl.errors import ConfigError, ValidationError
from lbctl.targets.bigip.model import (DeviceState, MemberSpec, MonitorSpec, PoolSpec, full_path, member_name,
                                       owner_mark, wanted)

SCHEMA_VERSION = "3.0.0"
APPLICATION = "lbctl"
ADMIN_STATE = {"enabled": "enable", "disabled": "disable", "offline": "offline"}
FROM_ADMIN_STATE = {v: k for k, v in ADMIN_STATE.items()}
MAX_RATIO = 100      # AS3's Pool_Member.ratio maximum (iControl REST allows 65535)
MAX_REMARK = 64
BUILTIN_MONITORS = {"http": "/Common/http", "https": "/Common/https", "tcp": "/Common/tcp",
                    "icmp": "/Common/gateway_icmp", "udp": "/Common/udp", "http2": "/Common/http2",
                    "tcp-half-open": "/Common/tcp_half_open"}
_LOCK = threading.Lock()
_VALID: dict[str, None] = {}   # JSON of objects that passed the schema
MAX_REMEMBERED = 50_000


def application(tenant: str) -> str:
    return "Shared" if tenant == "Common" else APPLICATION


def folder(tenant: str) -> str:
    """Where the tenant's pools live on the device, as a DeviceState partition."""
    return f"{tenant}/{application(tenant)}"


def declaration(pools: Mapping[str, PoolSpec], monitors: Mapping[str, MonitorSpec], tenant: str,
                owner: str, policies: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """The ADC declaration of one tenant holding ``pools``, ``monitors`` and the
    listeners' route ``policies`` (``policies``).

    :raises ConfigError: a value AS3 cannot take, naming the pool and member.
    """
    app = application(tenant)
    body: dict[str, Any] = {"class": "Application", "template": "shared" if tenant == "Common" else "generic"}
    for name, m in sorted(monitors.items()):
        body[name] = monitor_decl(m)
    for name, p in sorted(pools.items()):
        if name in body:
            raise ConfigError(f"pools.{name}: the name is taken by monitor {name} in the AS3 application")
        body[name] = pool_decl(p, tenant, app)
    for name, policy in sorted((policies or {}).items()):
        if name in body:
            raise ConfigError(f"the AS3 name {name} of a listener's route policy is taken by a pool or monitor")
        body[name] = policy
    return {"class": "ADC", "schemaVersion": SCHEMA_VERSION, "id": f"lbctl-{owner}-{tenant}",
            "remark": "managed by lbctl",
            tenant: {"class": "Tenant", "remark": owner_mark(owner), app: body}}


def document(desired: model.Desired, tenant: str, owner: str) -> dict[str, Any]:
    """The declaration of the model alone (``lbctl render -t as3``; no device involved)."""
    want = wanted(desired, folder(tenant), owner)
    return declaration(want.pools, want.monitors, tenant, owner, policies(desired))


# -- routes: one Endpoint_Policy per http listener with routes --------------------------

def policies(desired: model.Desired) -> dict[str, dict]:
    """Each http listener's routes as an ``Endpoint_Policy`` named ``routes_<listener>``,
    its rules in the model's route order (``model.Route.sort_key``) and matched
    ``first-match``, so BIG-IP picks the pool HAProxy and nginx pick; the listener's
    default pool last, without conditions.  lbctl declares no virtual server: attach
    the policy to yours (``policyEndpoint``; docs/bigip.md)."""
    out = {}
    for lst in desired.listeners:
        if lst.mode != "http" or not lst.routes:
            continue
        rules = [route_rule(f"route{i}", r) for i, r in enumerate(lst.routes)]
        if lst.default_pool:
            rules.append({"name": "default", "actions": [forward(lst.default_pool)]})
        out[f"routes_{lst.name}"] = {"class": "Endpoint_Policy", "strategy": "first-match",
                                     "remark": f"routes of listener {lst.name}"[:MAX_REMARK], "rules": rules}
    return out


def route_rule(name: str, route: model.Route) -> dict:
    conditions = []
    if route.host:
        wildcard = route.host.startswith("*.")
        conditions.append({"type": "httpHost", "event": "request", "host": {
            "operand": "ends-with" if wildcard else "equals", "values": [route.host[1:] if wildcard else route.host]}})
    if route.path:
        conditions.append({"type": "httpUri", "event": "request",
                           "path": {"operand": "starts-with", "values": [route.path], "caseSensitive": True}})
    source = f"service {route.service}" if route.service else "inventory"
    return {"name": name, "remark": source[:MAX_REMARK], "conditions": conditions, "actions": [forward(route.pool)]}


def forward(pool: str) -> dict:
    return {"type": "forward", "event": "request", "select": {"pool": {"use": pool}}}


def tenant_policies(body: Mapping[str, Any] | None, tenant: str) -> dict[str, dict]:
    """The route policies a tenant's declaration (``body``) holds."""
    app = (body or {}).get(application(tenant)) or {}
    return {k: v for k, v in app.items() if isinstance(v, dict) and v.get("class") == "Endpoint_Policy"}


def render(desired: model.Desired, tenant: str, owner: str) -> str:
    return json.dumps(document(desired, tenant, owner), indent=2) + "\n"


# ``lbctl render|validate --format as3`` of a bigip target's settings (lbctl.kinds: a format's module)
def text(desired: model.Desired, settings) -> str:
    """The declaration of ``desired`` as a bigip target with ``settings`` would post it, as JSON."""
    return render(desired, settings.as3_tenant, settings.owner)


def validate(desired: model.Desired, settings) -> None:
    """:raises ValidationError: the declaration is not valid against the AS3 schema."""
    check(document(desired, settings.as3_tenant, settings.owner))


def check(decl: Mapping[str, Any]) -> None:
    """:raises ValidationError: ``decl`` does not match F5's AS3 schema (the first problem, with its path)."""
    problems = errors(decl)
    if problems:
        raise ValidationError(f"the AS3 declaration does not match F5's schema: {problems[0]}")


def monitor_decl(m: MonitorSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"class": "Monitor", "monitorType": m.type, "interval": m.interval, "timeout": m.timeout}
    if m.type == "http":
        out.update(send=m.send, receive=m.recv)
    if m.description:
        out["remark"] = m.description
    return out


def pool_decl(p: PoolSpec, tenant: str, app: str) -> dict[str, Any]:
    out: dict[str, Any] = {"class": "Pool", "loadBalancingMode": p.lb_mode, "minimumMembersActive": p.min_active}
    if p.description:
        out["remark"] = p.description
    if p.monitor:
        own = f"/{tenant}/{app}/"
        out["monitors"] = [{"use": ref[len(own):]} if ref.startswith(own) else {"bigip": ref}
                           for ref in p.monitor.split(" and ")]
    out["members"] = [member_decl(p.name, m) for m in p.members]
    return out


def member_decl(pool: str, m: MemberSpec) -> dict[str, Any]:
    if m.ratio > MAX_RATIO:
        raise ConfigError(f"pools.{pool}: member {m.description or m.name}: weight {m.ratio} is above AS3's "
                          f"ratio maximum of {MAX_RATIO}")
    out = {"servicePort": m.port, "serverAddresses": [m.address], "ratio": m.ratio,
           "priorityGroup": m.priority_group, "connectionLimit": m.connection_limit,
           "adminState": ADMIN_STATE[m.admin], "shareNodes": False}
    if m.description:
        out["remark"] = m.description[:MAX_REMARK]
    return out


# -- reading a declaration back ------------------------------------------------------

def parse_tenant(body: Mapping[str, Any] | None, tenant: str, owner: str) -> DeviceState:
    """The pools and monitors lbctl declared in ``tenant`` (``body``: the tenant's object).

    :raises ConfigError: the tenant exists but lbctl did not declare it.
    """
    part = folder(tenant)
    if not body:
        return DeviceState(part, nodes={}, virtual_pools={})
    if body.get("remark") != owner_mark(owner):
        raise ConfigError(f"AS3 tenant {tenant} exists and was not declared by lbctl (its remark is not "
                          f"{owner_mark(owner)}); lbctl does not take it over: choose another as3_tenant")
    app = body.get(application(tenant)) or {}
    pools, monitors = {}, {}
    for name, item in app.items():
        if not isinstance(item, dict):
            continue
        if item.get("class") == "Pool":
            pools[name] = parse_pool(name, item, tenant)
        elif item.get("class") == "Monitor":
            monitors[name] = MonitorSpec(
                name=name, type=item.get("monitorType", ""), send=item.get("send", ""),
                recv=item.get("receive", ""), interval=int(item.get("interval", 5)),
                timeout=int(item.get("timeout", 16)), description=item.get("remark", ""))
    # AS3 owns the nodes and refuses to remove a pool in use: nothing to ask the device.
    return DeviceState(part, pools, monitors, nodes={}, virtual_pools={})


def parse_pool(name: str, item: Mapping[str, Any], tenant: str) -> PoolSpec:
    refs = []
    for ref in item.get("monitors") or []:
        if isinstance(ref, str):
            refs.append(BUILTIN_MONITORS.get(ref, ref))
        elif isinstance(ref, dict) and "use" in ref:
            refs.append(full_path(folder(tenant), ref["use"]))
        elif isinstance(ref, dict) and "bigip" in ref:
            refs.append(ref["bigip"])
    members = []
    for entry in item.get("members") or []:
        for addr in entry.get("serverAddresses") or []:
            members.append(MemberSpec(
                name=member_name(addr, entry["servicePort"]), address=addr, port=entry["servicePort"],
                ratio=entry.get("ratio", 1), priority_group=entry.get("priorityGroup", 0),
                connection_limit=entry.get("connectionLimit", 0),
                admin=FROM_ADMIN_STATE.get(entry.get("adminState", "enable"), "enabled"),
                description=entry.get("remark", "")))
    return PoolSpec(name=name, lb_mode=item.get("loadBalancingMode", "round-robin"),
                    monitor=" and ".join(refs) or None, min_active=item.get("minimumMembersActive", 1),
                    description=item.get("remark", ""), members=tuple(sorted(members, key=lambda m: m.name)))


# -- the schema --------------------------------------------------------------------------
# The schema checks every object of an Application against 111 ``if class == X
# then $ref X`` branches; at 1,000 pools that alone takes seconds.  ``errors``
# applies exactly the same rules with the branch looked up by class: the
# declaration without its objects against the whole schema, the object names
# against the Application's ``propertyNames``, and each object against the
# Application's ``additionalProperties`` with only its own class's branch.

@functools.lru_cache(maxsize=1)
def _validators() -> tuple[Any, Any, dict[str, Any], Any]:
    try:
        from jsonschema import Draft7Validator
    except ImportError:
        raise ConfigError("checking AS3 declarations needs jsonschema: pip install 'lbctl[bigip]'") from None
    text = resources.files("lbctl.data").joinpath("as3-schema.json").read_text(encoding="utf-8")
    root = Draft7Validator(json.loads(text))
    app = root.schema["definitions"]["Application"]
    objects = app["additionalProperties"]
    base = {k: v for k, v in objects.items() if k != "allOf"}
    by_class = {}
    for branch in objects["allOf"]:
        const = branch.get("if", {}).get("properties", {}).get("class", {}).get("const")
        if const is not None and set(branch) <= {"if", "then"}:
            by_class[const] = root.evolve(schema={**base, "allOf": [branch["then"]]})
    names = root.evolve(schema={"propertyNames": app["propertyNames"]})
    return root, root.evolve(schema=base), by_class, names


def validator() -> Any:
    """F5's AS3 schema, compiled once per process."""
    with _LOCK:
        return _validators()[0]


def errors(decl: Mapping[str, Any]) -> list[str]:
    """What the AS3 schema says is wrong with ``decl`` (empty: valid), most relevant first."""
    with _LOCK:
        root, base, by_class, names = _validators()  # a clear error first if jsonschema is missing
    from jsonschema.exceptions import best_match
    skeleton, objects = _split(decl)
    best = best_match(root.iter_errors(skeleton))
    for where, app_objects in objects:
        if best is None:
            best = best_match(names.iter_errors(dict.fromkeys(app_objects)))
            best = best and _at(best, where)
        for key, obj in app_objects.items():
            if best is not None:
                break
            text = json.dumps(obj, sort_keys=True)
            if text in _VALID:
                continue
            check = by_class.get(obj.get("class")) if isinstance(obj, dict) else None
            best = best_match((check or base).iter_errors(obj))
            if best is None:
                _remember(text)
            best = best and _at(best, where + [key])
    if best is None:
        return []
    return [f"/{'/'.join(str(p) for p in best.absolute_path)}: {best.message}"]


def _remember(text: str) -> None:
    """Objects found valid before are not checked again (a watch loop re-sends mostly the same)."""
    with _LOCK:
        if len(_VALID) >= MAX_REMEMBERED:
            _VALID.clear()
        _VALID[text] = None


def _split(decl: Mapping[str, Any]) -> tuple[dict, list[tuple[list, dict]]]:
    """The declaration without the objects in its applications, and those objects by application."""
    skeleton, objects = dict(decl), []
    for tname, tenant in decl.items():
        if not (isinstance(tenant, dict) and tenant.get("class") == "Tenant"):
            continue
        tenant = skeleton[tname] = dict(tenant)
        for aname, app in tenant.items():
            if isinstance(app, dict) and app.get("class") == "Application":
                keep = {k: v for k, v in app.items() if k in ("class", "label", "remark", "template",
                                                                 "schemaOverlay", "enable", "constants")}
                objects.append(([tname, aname], {k: v for k, v in app.items() if k not in keep}))
                tenant[aname] = keep
    return skeleton, objects


def _at(error: Any, prefix: list) -> Any:
    error.path.extendleft(reversed(prefix))
    return error
