"""Routes that services declare, and their place among the inventory's.  Pure.

A service declares routes in ``Service.Meta["lb-route"]`` (``host[/path-prefix]``,
comma-separated) and may pick a listener with ``Meta["lb-listener"]``
(docs/consul.md#routes-declared-by-services).  ``declared`` reads them, as
untrusted data: a bad value is skipped with a warning naming the service and the
value.  ``resolve`` is the one place the rules are applied:

- a route goes to the listener ``lb-listener`` names, else to the first listener (by
  name) whose ``accept_routes`` covers its host; outside every pattern it is refused;
- a route the inventory defines always wins;
- of two services claiming the same host and path on a listener, the one registered
  first (lowest ``CreateIndex`` of its instances, then its name) keeps it;
- every listener's routes end up in the one order (``model.Route.sort_key``) that
  every target renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from lbctl import model
from lbctl import validate as v
from lbctl.discovery import consul_model
from lbctl.errors import ConfigError

ROUTE_KEY, LISTENER_KEY = consul_model.ROUTE_KEYS
MAX_ROUTES = 16  # routes one service may declare
MAX_TEXT = 512  # Consul's own limit on a meta value
NO_INDEX = 2**63  # the CreateIndex of a service that has none (it comes last)
INVENTORY = "inventory"


@dataclass(frozen=True)
class Claim:
    """The routes one service declares: ``(host, path or None)`` pairs, sorted."""

    service: str
    routes: tuple[tuple[str, str | None], ...]
    listener: str | None = None  # lb-listener, if given
    created: int = NO_INDEX  # the lowest CreateIndex of its instances: who came first


@dataclass(frozen=True)
class Refusal:
    """A declared route that is not served, and why; ``holder``: who keeps it (a conflict)."""

    service: str
    route: str
    reason: str
    listener: str | None = None
    holder: str | None = None

    @property
    def conflict(self) -> bool:
        return self.holder is not None

    def text(self) -> str:
        return f"consul service {self.service}: route {self.route} refused: {self.reason}"


def route_text(host: str | None, path: str | None) -> str:
    """``host/path`` as ``lb-route`` writes it (a path alone: any host)."""
    return f"{host or ''}{path or ''}"


def declared(service: str, entries: Any) -> tuple[Claim | None, list[str]]:
    """The routes ``service`` declares in the meta of its first instance (by ID, as its
    ``lb-*`` options), and a warning for each value skipped.  None: it declares none."""
    meta = consul_model.first_meta(entries)
    raw = meta.get(ROUTE_KEY)
    if raw is None:
        return None, []
    where = f"consul service {service}: Meta.{ROUTE_KEY}"
    if not isinstance(raw, str) or len(raw) > MAX_TEXT:
        return None, [f"{where} {v.show(raw)} ignored: must be text of at most {MAX_TEXT} characters"]
    problems: list[str] = []
    found: dict[tuple[str, str | None], None] = {}
    for item in raw.split(","):
        try:
            found[parse_route(item.strip(), where)] = None
        except ConfigError as exc:
            problems.append(f"{exc}; skipped")
    if len(found) > MAX_ROUTES:
        problems.append(f"{where}: more than {MAX_ROUTES} routes; the first {MAX_ROUTES} kept")
    listener = meta.get(LISTENER_KEY)
    if listener is not None:
        try:
            listener = v.ident(listener, f"consul service {service}: Meta.{LISTENER_KEY}")
        except ConfigError as exc:
            return None, problems + [f"{exc}; its routes are skipped"]
    if not found:
        return None, problems
    routes = tuple(sorted(list(found)[:MAX_ROUTES], key=lambda r: (r[0], r[1] or "")))
    return Claim(service, routes, listener, created(entries)), problems


def parse_route(text: str, where: str) -> tuple[str, str | None]:
    """``host[/path]`` → ``(host, path or None)``.  :raises ConfigError: naming the value."""
    host, slash, path = text.partition("/")
    try:
        return v.host_pattern(host, where), v.route_path(slash + path, where) if slash else None
    except ConfigError:
        raise v.fail(where, "each route must be host[/path-prefix]: an RFC 1123 host name (or '*.' and one), "
                     "then '/' and segments of letters, digits and ._~-", text) from None


def created(entries: Any) -> int:
    """The lowest ``Service.CreateIndex`` of the entries (``NO_INDEX`` if none has one)."""
    found = [e["Service"].get("CreateIndex") for e in entries or []
             if isinstance(e, dict) and isinstance(e.get("Service"), dict)]
    return min((i for i in found if type(i) is int and i >= 0), default=NO_INDEX)


def resolve(listeners: Iterable[model.Listener], claims: Iterable[Claim]) -> tuple[tuple[model.Listener, ...], list[Refusal]]:
    """The listeners with the routes of ``claims`` in place, and the routes refused."""
    listeners = tuple(listeners)
    opted = [lst for lst in sorted(listeners, key=lambda x: x.name) if lst.accept_routes]
    holders = {(lst.name, r.host, r.path): INVENTORY for lst in listeners for r in lst.routes}
    added: dict[str, list[model.Route]] = {}
    refused: list[Refusal] = []
    tcp = {name for lst in listeners if lst.mode == "tcp" for name in model.listener_pools(lst)}
    for claim in sorted(claims, key=lambda c: (c.created, c.service)):
        for host, path in claim.routes:
            text = route_text(host, path)
            lst, why = place(opted, claim.listener, host)
            if claim.service in tcp:
                lst, why = None, f"its pool {claim.service} serves a tcp listener"
            if lst is None:
                refused.append(Refusal(claim.service, text, why))
                continue
            holder = holders.setdefault((lst.name, host, path), claim.service)
            if holder != claim.service:
                kept = "the inventory's route" if holder == INVENTORY else f"service {holder}, registered first"
                refused.append(Refusal(claim.service, text, f"listener {lst.name} serves it from {kept}",
                                       lst.name, holder))
                continue
            added.setdefault(lst.name, []).append(model.Route(claim.service, host, path, claim.service))
    out = tuple(lst if lst.name not in added else
                model.replace(lst, routes=tuple(sorted(lst.routes + tuple(added[lst.name]), key=model.Route.sort_key)))
                for lst in listeners)
    return out, refused


def place(opted: list[model.Listener], wanted: str | None, host: str) -> tuple[model.Listener | None, str]:
    """The listener a route for ``host`` goes to, or None and why."""
    if wanted is not None:
        lst = next((x for x in opted if x.name == wanted), None)
        if lst is None:
            return None, f"lb-listener {wanted} is not a listener with accept_routes"
        if not any(model.covers(p, host) for p in lst.accept_routes):
            return None, f"listener {wanted} accepts only {', '.join(lst.accept_routes)}"
        return lst, ""
    lst = next((x for x in opted if any(model.covers(p, host) for p in x.accept_routes)), None)
    if lst is None:
        return None, f"host {host} is outside every listener's accept_routes"
    return lst, ""


class Book:
    """The claims of the watched services, and of the services gone less than ``grace``
    seconds ago: their routes stay (their pools empty: 503) so that a restart of every
    instance does not take the route away and back (``watch.route_grace``)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.claims: dict[str, Claim] = {}
        self.leaving: dict[str, float] = {}  # service → when its last instance went

    def update(self, name: str, claim: Claim | None, now: float) -> bool:
        """``name`` is watched and declares ``claim``; whether the routes changed."""
        self.leaving.pop(name, None)
        old = self.claims.pop(name, None)
        if claim is not None:
            self.claims[name] = claim
        return claim != old

    def gone(self, name: str, now: float) -> bool:
        """The last instance of ``name`` went; whether the routes changed (only without a grace)."""
        if name not in self.claims or name in self.leaving:
            return False
        if self.grace > 0:
            self.leaving[name] = now
            return False
        del self.claims[name]
        return True

    def expire(self, now: float) -> bool:
        """Drop the claims whose grace ran out; whether any did."""
        done = [name for name, since in self.leaving.items() if now - since >= self.grace]
        for name in done:
            del self.leaving[name], self.claims[name]
        return bool(done)

    def next_expiry(self) -> float | None:
        return min(self.leaving.values()) + self.grace if self.leaving else None


def table(listeners: Iterable[model.Listener]) -> list[dict]:
    """Every route of every listener, in rendered order: listener, route, pool, source."""
    return [{"listener": lst.name, "route": route_text(r.host, r.path), "pool": r.pool,
             "source": f"service {r.service}" if r.service else INVENTORY}
            for lst in sorted(listeners, key=lambda x: x.name) for r in lst.routes]
