"""The model from an inventory and discovered services.  Pure.

Each watched service becomes the pool of the same name: its members come from
Consul, its settings from the inventory's pool of that name (if any), then from
the service's ``lb-*`` meta keys.  Inventory pools that are not services stay
as they are.  A listener's pool that discovery has not seen (yet) is an empty
pool, so the config stays valid and the listener answers 503 until members come.
Routes that services declare join the inventory's listeners through ``routes.resolve``.
"""

from __future__ import annotations

from typing import Any

from lbctl import inventory, model
from lbctl import validate as v
from lbctl.discovery import consul_model as cm
from lbctl.discovery import routes
from lbctl.errors import ConfigError


def static_pools(parts: inventory.Parts) -> dict[str, model.Pool]:
    """The inventory's own pools, built once per reading of the inventory."""
    return {name: parts.pool(name) for name in parts.pools}


def service_pool(parts: inventory.Parts, service: str, entries: Any, policy: cm.Policy) -> tuple[model.Pool | None, list[str]]:
    """The pool for one service's health entries, and the problems found on the way."""
    try:
        v.ident(service, "service name")
    except ConfigError as exc:
        return None, [f"consul service left out: {exc}"]
    raw_members, problems = cm.members(service, entries, policy)
    options, option_problems = cm.options(service, entries)
    problems += option_problems
    base = dict(parts.pools.get(service) or {})
    base.pop("members", None)
    path = f"consul service {service}"
    if options:
        merged = {**base, **options, "health": {**(base.get("health") or {}), **options.get("health", {})}}
        if "dns" in options:  # lb-dns-* meta keys over the inventory's dns mapping
            merged["dns"] = {**(base.get("dns") if isinstance(base.get("dns"), dict) else {}), **options["dns"]}
        try:
            return parts.pool(service, {**merged, "members": raw_members}, path), problems
        except ConfigError as exc:
            problems.append(f"{path}: lb-* meta options ignored: {exc}")
    try:
        return parts.pool(service, {**base, "members": raw_members}, path), problems
    except ConfigError as exc:
        return None, problems + [f"{path}: left out: {exc}"]


def desired(parts: inventory.Parts, static: dict[str, model.Pool], services: dict[str, model.Pool],
            listeners: tuple[model.Listener, ...] | None = None) -> model.Desired:
    """Inventory listeners (or ``listeners``: them with services' routes, ``routes.resolve``)
    and pools (``static``, built once), with discovered services' pools in place.

    :raises ConfigError: the inventory itself is inconsistent.
    """
    listeners = parts.listeners if listeners is None else listeners
    pools = {**static, **services}
    for listener in listeners:
        for name in model.listener_pools(listener):
            if name not in pools:
                pools[name] = parts.pool(name, {})
    return v.canonical(listeners, tuple(pools.values()))


def positions(desired: model.Desired) -> dict[str, int]:
    """Where each pool is in ``desired.pools`` (for ``replace_pools``)."""
    return {pool.name: i for i, pool in enumerate(desired.pools)}


def replace_pools(before: model.Desired, where: dict[str, int], pools: dict[str, model.Pool]) -> model.Desired | None:
    """``before`` (a ``desired``, its pools at ``where``) with ``pools`` in place of the
    pools of the same names, as ``desired`` would give; None when one of them is not in
    ``before`` (then build it whole).  A watch round changes a few pools of 10,000: no
    sort of them all.

    :raises ConfigError: a changed pool does not fit its listeners.
    """
    if not all(name in where for name in pools):
        return None
    used_in = {name: lst.mode for lst in before.listeners for name in model.listener_pools(lst)}
    v.fits(pools.values(), used_in)
    out = list(before.pools)
    for name, pool in pools.items():
        out[where[name]] = pool
    return model.Desired(before.listeners, tuple(out))


def claims(entries: dict[str, Any]) -> tuple[dict[str, routes.Claim], list[str]]:
    """The routes each service declares (those with a plain name), and the problems found."""
    out, problems = {}, []
    for name, service_entries in sorted(entries.items()):
        if not v.IDENT.fullmatch(name):
            continue  # left out with its pool (service_pool says why)
        claim, found = routes.declared(name, service_entries)
        problems += found
        if claim is not None:
            out[name] = claim
    return out, problems


def from_entries(parts: inventory.Parts, entries: dict[str, Any], policy: cm.Policy,
                 refusals: list[routes.Refusal] | None = None) -> tuple[model.Desired, list[str]]:
    """The whole model from one reading of every watched service (one-shot commands);
    the routes refused go into ``refusals`` too, if given (``lbctl routes``)."""
    pools, problems = {}, []
    for name, service_entries in sorted(entries.items()):
        pool, found = service_pool(parts, name, service_entries, policy)
        problems += found
        if pool is not None:
            pools[name] = pool
    found_claims, found = claims({name: entries[name] for name in pools})
    listeners, refused = routes.resolve(parts.listeners, found_claims.values())
    problems += found + [r.text() for r in refused]
    if refusals is not None:
        refusals.extend(refused)
    return desired(parts, static_pools(parts), pools, listeners), problems
