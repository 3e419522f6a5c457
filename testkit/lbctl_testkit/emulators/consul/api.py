"""Consul's ``/v1`` endpoints on top of ``Store``: parameter parsing, blocking, headers.

``Api.handle(request, abort)`` returns a ``Response``; sockets live in ``server.py``.
Parsing follows Consul's ``agent/http.go`` ``parse``: consistency (400 for
``stale``+``consistent``), ``wait``/``index`` (400 ``Invalid wait time`` /
``Invalid index``), then the RPC (500 ``No path to datacenter``, filter errors).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Callable, Hashable

from .catalog import ci
from .core import ConsulError
from .durations import parse_bool, parse_duration
from .filter import AGENT_SERVICE, CHECK, HEALTH_ENTRY, NODE, SERVICE, SERVICE_NODE, FilterError, compile_filter
from .kvapi import KVApiMixin
from .proto import JSON, TEXT, QueryOpts, Request, Response, ok_json, text

if TYPE_CHECKING:
    from .server import ConsulEmulator
    from .state import Store

# What a dev agent serves at /ui/ (the web UI); "/" redirects there, as in Consul.
UI_PAGE = b"<!DOCTYPE html><html><head><title>Consul by HashiCorp</title></head><body></body></html>\n"


def filter_non_passing(entries: list[dict]) -> list[dict]:
    """Consul's ``filterNonPassing``: drop entries with any non-passing check (swap with last)."""
    out = list(entries)
    n, i = len(out), 0
    while i < n:
        if any(c["Status"] != "passing" for c in out[i]["Checks"]):
            out[i] = out[n - 1]
            n -= 1
        else:
            i += 1
    return out[:n]


class Api(KVApiMixin):
    def __init__(self, store: Store, emu: ConsulEmulator) -> None:
        self.store = store
        self.emu = emu
        self.last_services: tuple[Any, bytes] = (None, b"")  # the catalog/services answer last sent, encoded
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = []
        for method, pattern, fn in [
            ("GET", r"/v1/agent/self", self.agent_self),
            ("GET", r"/v1/agent/members", lambda r: ok_json(self.store.members(wan=_bool(r.q("wan") or "false")))),
            ("GET", r"/v1/agent/services", self.agent_services),
            ("GET", r"/v1/agent/checks", self.agent_checks),
            ("GET", r"/v1/agent/service/(?P<x>.+)", self.agent_service),
            ("PUT", r"/v1/agent/service/register", self.agent_register),
            ("PUT", r"/v1/agent/service/deregister/(?P<x>.+)", self.agent_deregister),
            ("PUT", r"/v1/agent/service/maintenance/(?P<x>.+)", self.service_maintenance),
            ("PUT", r"/v1/agent/maintenance", self.node_maintenance),
            ("PUT", r"/v1/agent/check/register", self.check_register),
            ("PUT", r"/v1/agent/check/deregister/(?P<x>.+)", self.check_deregister),
            ("PUT", r"/v1/agent/check/(?P<verb>pass|warn|fail)/(?P<x>.+)", self.check_ttl),
            ("PUT", r"/v1/agent/check/update/(?P<x>.+)", self.check_update),
            ("PUT", r"/v1/catalog/register", self.catalog_register),
            ("PUT", r"/v1/catalog/deregister", self.catalog_deregister),
            ("GET", r"/v1/catalog/datacenters", lambda r: ok_json([self.store.datacenter])),
            ("GET", r"/v1/catalog/services", self.catalog_services),
            ("GET", r"/v1/catalog/service/(?P<x>.*)", self.catalog_service),
            ("GET", r"/v1/catalog/nodes", self.catalog_nodes),
            ("GET", r"/v1/catalog/node/(?P<x>.*)", self.catalog_node),
            ("GET", r"/v1/catalog/connect/(?P<x>.*)", self.catalog_connect),
            ("GET", r"/v1/health/service/(?P<x>.*)", self.health_service),
            ("GET", r"/v1/health/checks/(?P<x>.*)", self.health_checks),
            ("GET", r"/v1/health/state/(?P<x>.*)", self.health_state),
            ("GET", r"/v1/health/node/(?P<x>.*)", self.health_node),
            ("GET|PUT|DELETE", r"/v1/kv/(?P<x>.*)", self.kv),
            ("PUT", r"/v1/session/create", self.session_create),
            ("PUT", r"/v1/session/destroy/(?P<x>.*)", self.session_destroy),
            ("PUT", r"/v1/session/renew/(?P<x>.*)", self.session_renew),
            ("GET", r"/v1/session/info/(?P<x>.*)", self.session_info),
            ("GET", r"/v1/session/list", self.session_list),
            ("GET", r"/v1/session/node/(?P<x>.*)", self.session_node),
            ("GET", r"/v1/status/leader", lambda r: ok_json(self.store.server_address if self.emu.leader else "")),
            ("GET", r"/v1/status/peers", lambda r: ok_json([self.store.server_address])),
            ("GET", r"/", lambda r: Response(301, b"", TEXT, {"Location": "/ui/"})),
            ("GET", r"/ui/", lambda r: Response(200, UI_PAGE, "text/html; charset=utf-8")),
        ]:
            self.routes.append((method, re.compile(pattern + r"\Z"), fn))

    def handle(self, req: Request) -> Response:
        allowed = False
        for methods, rx, fn in self.routes:
            m = rx.match(req.path)
            if m is None:
                continue
            if req.method not in methods.split("|"):
                allowed = True
                continue
            try:
                return fn(req, **m.groupdict())
            except ConsulError as exc:
                return text(exc.status, exc.message)
        if allowed:
            return text(405, f"method {req.method} not allowed")
        return text(404, "404 page not found")

    # ------------------------------------------------------------ plumbing
    def opts(self, req: Request) -> QueryOpts:
        stale, consistent = req.has("stale"), req.has("consistent")
        if stale and consistent:
            raise ConsulError(400, "Cannot specify ?stale with ?consistent, conflicting semantics.")
        if req.has("max_stale"):
            try:
                parse_duration(req.q("max_stale"))
            except ValueError:
                raise ConsulError(400, "Invalid max_stale value") from None
            stale = True
        wait = 0.0
        if req.q("wait"):
            try:
                wait = parse_duration(req.q("wait"))
            except ValueError:
                raise ConsulError(400, "Invalid wait time") from None
        min_index = 0
        if req.q("index"):
            if not req.q("index").isdigit() or int(req.q("index")) >= 2 ** 64:
                raise ConsulError(400, "Invalid index")
            min_index = int(req.q("index"))
        self.check_dc(req)
        if not stale and not self.emu.leader:
            raise ConsulError(500, "No cluster leader")
        emu = self.emu
        if wait <= 0:
            wait = emu.default_wait
        wait = min(wait, emu.max_wait)
        timeout = wait + (self.store.random() * wait / 16 if emu.jitter else 0.0)
        return QueryOpts(min_index, timeout, "stale" if stale else ("consistent" if consistent else "leader"),
                         req.abort)

    def check_dc(self, req: Request) -> None:
        dc = req.q("dc")
        if dc and dc != self.store.datacenter:
            raise ConsulError(500, "No path to datacenter")

    def write_guard(self, req: Request) -> None:
        self.check_dc(req)
        if not self.emu.leader:
            raise ConsulError(500, "No cluster leader")

    def meta(self, idx: int, o: QueryOpts, *, streaming: bool = False) -> dict[str, str]:
        h = {"X-Consul-Index": str(max(idx, 1))}
        if not streaming:
            h["X-Consul-Knownleader"] = "true" if self.emu.leader else "false"
            h["X-Consul-Lastcontact"] = str(self.emu.last_contact_ms if o.consistency == "stale" else 0)
        h["X-Consul-Effective-Consistency"] = o.consistency
        h["X-Consul-Query-Backend"] = "streaming" if streaming else "blocking-query"
        return h

    def blocking(self, o: QueryOpts, key: Hashable, read: tuple[Callable[[], int], Callable[[], Any]]) -> tuple[int, Any]:
        return self.store.block(key, o.min_index, o.timeout, read[0], read[1], o.abort)

    def pred(self, req: Request, schema: dict) -> Any:
        expr = req.q("filter")
        if not expr:
            return None
        try:
            return compile_filter(expr, schema)
        except FilterError as exc:
            raise ConsulError(500, f"Failed to create boolean expression evaluator: {exc}") from None

    @staticmethod
    def node_meta(req: Request) -> dict[str, str]:
        out = {}
        for item in req.query.get("node-meta", []):
            k, _, v = item.partition(":")
            out[k] = v
        return out

    def hide(self, req: Request, rows: list[dict], h: dict[str, str], node_key: Callable[[dict], str]) -> list[dict]:
        """Silent ACL row filtering (fault switch ``hide_nodes``)."""
        hidden = self.emu.hidden_nodes
        if not hidden:
            return rows
        kept = [r for r in rows if node_key(r) not in hidden]
        if len(kept) != len(rows) and req.token and req.token_valid:
            h["X-Consul-Results-Filtered-By-Acls"] = "true"
        return kept

    @staticmethod
    def body_json(req: Request) -> Any:
        if not req.body.strip():
            return {}
        try:
            return json.loads(req.body)
        except ValueError as exc:
            raise ConsulError(400, f"Request decode failed: {exc}") from None

    # ------------------------------------------------------------ agent
    def agent_self(self, req: Request) -> Response:
        return ok_json(self.store.agent_self(leader=self.emu.leader))

    def agent_services(self, req: Request) -> Response:
        return ok_json(self.store.agent_services(self.pred(req, AGENT_SERVICE)))

    def agent_checks(self, req: Request) -> Response:
        return ok_json(self.store.agent_checks(self.pred(req, CHECK)))

    def agent_service(self, req: Request, x: str) -> Response:
        svc = self.store.agent_services().get(x)
        if svc is None:
            return text(404, f"unknown service ID: {x}")
        return ok_json(svc)

    def agent_register(self, req: Request) -> Response:
        replace = req.has("replace-existing-checks") and _bool(req.q("replace-existing-checks") or "true")
        self.store.agent_register_service(self.body_json(req), replace_existing_checks=replace)
        return Response()

    def agent_deregister(self, req: Request, x: str) -> Response:
        self.store.agent_deregister_service(x)
        return Response()

    @staticmethod
    def enable_flag(req: Request) -> bool:
        if not req.has("enable"):
            raise ConsulError(400, "Missing value for enable")
        try:
            return parse_bool(req.q("enable"))
        except ValueError:
            raise ConsulError(400, f'Invalid value for enable: "{req.q("enable")}"') from None

    def service_maintenance(self, req: Request, x: str) -> Response:
        self.store.agent_service_maintenance(x, self.enable_flag(req), req.q("reason"))
        return Response()

    def node_maintenance(self, req: Request) -> Response:
        self.store.agent_node_maintenance(self.enable_flag(req), req.q("reason"))
        return Response()

    def check_register(self, req: Request) -> Response:
        self.store.agent_register_check(self.body_json(req))
        return Response()

    def check_deregister(self, req: Request, x: str) -> Response:
        self.store.agent_deregister_check(x)
        return Response()

    def check_ttl(self, req: Request, verb: str, x: str) -> Response:
        status = {"pass": "passing", "warn": "warning", "fail": "critical"}[verb]
        self.store.agent_update_ttl(x, status, req.q("note"))
        return Response()

    def check_update(self, req: Request, x: str) -> Response:
        body = {k.lower(): v for k, v in (self.body_json(req) or {}).items()}
        status = body.get("status", "")
        if status not in ("passing", "warning", "critical"):
            raise ConsulError(400, f"Invalid check status: '{status}'")
        self.store.agent_update_ttl(x, status, str(body.get("output", "")))
        return Response()

    # ------------------------------------------------------------ catalog
    def catalog_register(self, req: Request) -> Response:
        body = self.catalog_write(req)
        self.store.catalog_register(body)
        return ok_json(True)

    def catalog_deregister(self, req: Request) -> Response:
        body = self.catalog_write(req)
        self.store.catalog_deregister(body)
        return ok_json(True)

    def catalog_write(self, req: Request) -> Any:
        """Catalog writes name their datacenter in the body (``Datacenter``), not the query."""
        self.write_guard(req)
        body = self.body_json(req)
        dc = ci(body).get("datacenter")
        if dc and dc != self.store.datacenter:
            raise ConsulError(500, "No path to datacenter")
        return body

    def catalog_services(self, req: Request) -> Response:
        o = self.opts(req)
        read = self.store.read_catalog_services(node_meta=self.node_meta(req), pred=self.pred(req, SERVICE_NODE))
        idx, data = self.blocking(o, "services", read)
        if self.last_services[0] is not data:  # the store keeps the answer until the services change
            self.last_services = (data, ok_json(data).body)
        return Response(200, self.last_services[1], JSON, self.meta(idx, o))

    def catalog_service(self, req: Request, x: str) -> Response:
        if not x:
            return text(400, "Missing service name")
        o = self.opts(req)
        read = self.store.read_catalog_service(x, tags=req.query.get("tag"), node_meta=self.node_meta(req),
                                               pred=self.pred(req, SERVICE_NODE))
        idx, rows = self.blocking(o, ("svc", x), read)
        h = self.meta(idx, o)
        return ok_json(self.hide(req, no_peer(req, rows), h, lambda r: r["Node"]), h)

    def catalog_nodes(self, req: Request) -> Response:
        o = self.opts(req)
        read = self.store.read_catalog_nodes(node_meta=self.node_meta(req), pred=self.pred(req, NODE))
        idx, rows = self.blocking(o, "nodes", read)
        h = self.meta(idx, o)
        return ok_json(self.hide(req, rows, h, lambda r: r["Node"]), h)

    def catalog_node(self, req: Request, x: str) -> Response:
        o = self.opts(req)
        idx, data = self.blocking(o, "catalog", self.store.read_catalog_node(x, self.pred(req, SERVICE)))
        return ok_json(data, self.meta(idx, o))

    def catalog_connect(self, req: Request, x: str) -> Response:
        if not x:
            return text(400, "Missing service name")
        o = self.opts(req)
        idx, rows = self.blocking(o, "services", self.store.read_catalog_connect(x, self.pred(req, SERVICE_NODE)))
        return ok_json(rows, self.meta(idx, o))

    # ------------------------------------------------------------ health
    def health_service(self, req: Request, x: str) -> Response:
        if not x:
            return text(400, "Missing service name")
        o = self.opts(req)
        read = self.store.read_health_service(x, tags=req.query.get("tag"), node_meta=self.node_meta(req),
                                              pred=self.pred(req, HEALTH_ENTRY))
        idx, entries = self.blocking(o, ("svc", x), read)
        streaming = self.emu.streaming and o.min_index > 0 and not req.has("near")
        h = self.meta(idx, o, streaming=streaming)
        if req.has("passing"):
            try:
                passing = req.q("passing") == "" or parse_bool(req.q("passing"))
            except ValueError:
                return text(400, "Invalid value for ?passing")
            if passing:
                entries = filter_non_passing(entries)
        return ok_json(self.hide(req, no_peer(req, entries), h, lambda e: e["Node"]["Node"]), h)

    def health_checks(self, req: Request, x: str) -> Response:
        if not x:
            return text(400, "Missing service name")
        o = self.opts(req)
        read = self.store.read_health_checks(x, node_meta=self.node_meta(req), pred=self.pred(req, CHECK))
        idx, rows = self.blocking(o, ("svc", x), read)
        h = self.meta(idx, o)
        return ok_json(self.hide(req, rows, h, lambda r: r["Node"]), h)

    def health_state(self, req: Request, x: str) -> Response:
        if not x:
            return text(400, "Missing check state")
        if x not in ("any", "passing", "warning", "critical"):
            return text(400, f'Invalid check state "{x}"')
        o = self.opts(req)
        read = self.store.read_health_state(x, node_meta=self.node_meta(req), pred=self.pred(req, CHECK),
                                            hidden=self.emu.hidden_nodes)
        idx, (body, dropped) = self.blocking(o, "checks", read)
        body = body() if callable(body) else body  # every check: joined outside the store's lock
        h = self.meta(idx, o)
        if dropped and req.token and req.token_valid:
            h["X-Consul-Results-Filtered-By-Acls"] = "true"
        return Response(200, body, JSON, h)

    def health_node(self, req: Request, x: str) -> Response:
        if not x:
            return text(400, "Missing node name")
        o = self.opts(req)
        idx, rows = self.blocking(o, "checks", self.store.read_health_node(x, pred=self.pred(req, CHECK)))
        return ok_json(rows, self.meta(idx, o))


def no_peer(req: Request, rows: list[dict]) -> list[dict]:
    """``?peer=<name>`` reads a peered cluster's services: the emulator has no peerings."""
    return [] if req.q("peer") else rows


def _bool(value: str) -> bool:
    try:
        return parse_bool(value)
    except ValueError:
        return False

