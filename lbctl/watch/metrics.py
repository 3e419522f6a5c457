"""Prometheus metrics and the ``/metrics``, ``/healthz``, ``/readyz`` and ``/vrrp/<target>`` endpoints
of ``lbctl watch`` (prometheus-client, which speaks the exposition format), beside the operator page."""

from __future__ import annotations

import json
import threading
import time
from math import nan
from http.server import ThreadingHTTPServer
from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lbctl import model
from lbctl.ui import server

ROLLBACKS = ("rolled-back", "rollback-failed")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.renders = Counter("lbctl_renders", "Renders of a target's configuration", ["target", "result"], registry=r)
        self.applies = Counter("lbctl_applies", "Applies that changed or tried to change a target",
                               ["target", "result"], registry=r)
        self.rollbacks = Counter("lbctl_rollbacks", "Rollbacks, automatic or asked for", ["target", "result"], registry=r)
        self.duration = Histogram("lbctl_apply_duration_seconds", "Time from check to verified change", ["target"],
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.consul_requests = Counter("lbctl_consul_requests", "Requests to Consul by endpoint and outcome",
                                       ["endpoint", "outcome"], registry=r)
        self.consul_connections = Gauge("lbctl_consul_connections",
                                        "Connections to Consul in use (one per request in flight)", registry=r)
        self.last_success = Gauge("lbctl_last_successful_apply_timestamp_seconds",
                                  "When a target last took a change", ["target"], registry=r)
        self.data_age = Gauge("lbctl_discovery_data_age_seconds", "Seconds since discovery last answered", registry=r)
        self.members = Gauge("lbctl_pool_members", "Members of each pool by state", ["pool", "state"], registry=r)
        self.leader = Gauge("lbctl_leader", "1 when this process may write to shared targets", registry=r)
        self.vrrp = Gauge("lbctl_vrrp_state", "Each VRRP instance's state on this node, as keepalived last notified "
                          "it: 0 stopped, 1 backup, 2 master, 3 fault", ["target", "instance"], registry=r)
        self.vrrp_targets: list = []  # keepalived targets (their ``node_report``), read at each scrape
        self.refusals = Counter("lbctl_guard_refusals", "Changes the removal guard refused", ["target", "action"],
                                registry=r)
        self.route_count = Gauge("lbctl_routes", "Routes served, by source (inventory or service)", ["source"],
                                 registry=r)
        self.refused_routes: tuple = ()  # the last ``discovery.routes.Refusal``s, for the operator page
        self.routes_refused = Gauge("lbctl_routes_refused", "Routes services declare that are not served, by reason "
                                    "(conflict: another service or the inventory holds it; not-accepted: no listener "
                                    "accepts it)", ["reason"], registry=r)

    def consul_request(self, endpoint: str, outcome: str) -> None:
        """A ``discovery.consul.Client`` observer: endpoint catalog, checks or service; outcome ok, 429 or error."""
        self.consul_requests.labels(endpoint, outcome).inc()

    def follow_consul(self, age: Callable[[], float | None], in_use: Callable[[], int]) -> None:
        """Read the data age (NaN before the first answer) and connections in use at each scrape."""
        self.data_age.set_function(lambda: nan if (seconds := age()) is None else seconds)
        self.consul_connections.set_function(in_use)

    def record(self, entry: dict) -> None:
        """A ``TargetState.record`` listener."""
        target, result = entry["target"], entry["result"]
        if result == "refused":
            self.refusals.labels(target, entry["action"]).inc()
            return
        if entry["action"] == "rollback" or result in ROLLBACKS:
            self.rollbacks.labels(target, result).inc()
        if entry["action"] == "apply":
            self.applies.labels(target, result).inc()
        if entry.get("duration_s") is not None:
            self.duration.labels(target).observe(entry["duration_s"])
        if result in ("applied", "written"):
            self.last_success.labels(target).set(time.time())

    def pools(self, desired: model.Desired, names: set[str] | None = None, where: dict[str, int] | None = None
              ) -> None:
        """Member counts of the pools in ``names`` (all of them if None), found through
        ``where`` (each pool's place in ``desired.pools``, if known) instead of a scan."""
        if names is None:
            self.members.clear()
        for pool in desired.pools if names is None or where is None else placed(desired, names, where):
            if names is None or pool.name in names:
                for state in model.MEMBER_STATES:
                    self.members.labels(pool.name, state).set(sum(m.state == state for m in pool.members))

    def routes(self, listeners: Iterable[model.Listener], refused: Iterable) -> None:
        """The routes served by source, and the routes refused (``discovery.routes.Refusal``s) by reason."""
        served = [r for lst in listeners for r in lst.routes]
        self.route_count.labels("inventory").set(sum(r.service is None for r in served))
        self.route_count.labels("service").set(sum(r.service is not None for r in served))
        refused = self.refused_routes = tuple(refused)
        self.routes_refused.labels("conflict").set(sum(r.conflict for r in refused))
        self.routes_refused.labels("not-accepted").set(sum(not r.conflict for r in refused))

    def follow_vrrp(self, targets: list) -> None:
        """Report these keepalived targets' VRRP states (``lbctl_vrrp_state``, ``/vrrp/<target>``)."""
        self.vrrp_targets = targets
        self.vrrp.clear()

    def vrrp_report(self, name: str) -> dict | None:
        """What ``/vrrp/<name>`` answers (a peer's ``lbctl status`` reads it), None if no such target."""
        return next((t.node_report() for t in self.vrrp_targets if t.name == name), None)

    def text(self) -> bytes:
        for target in self.vrrp_targets:
            for instance, code in target.vrrp_states().items():
                self.vrrp.labels(target.name, instance).set(code)
        return generate_latest(self.registry)


class StatusServer(ThreadingHTTPServer):
    """``/metrics``; ``/healthz`` (the loop is alive); ``/readyz`` (synced and fresh); and,
    given a ``page``, the operator page and ``/api/v1/status`` (lbctl.ui.server)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, alive: Callable[[], bool],
                 ready: Callable[[], tuple[bool, str]], page: server.Page | None = None) -> None:
        self.metrics, self.alive, self.ready, self.page = metrics, alive, ready, page
        super().__init__(address, Handler)
        threading.Thread(target=self.serve_forever, name="status server", daemon=True).start()


class Handler(server.Handler):
    """The page's paths (lbctl.ui.server.Handler), then these; never authenticated (Prometheus,
    probes and keepalived peers read them)."""

    server: StatusServer

    def other(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/metrics":
            self.answer(200, self.server.metrics.text(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = self.server.alive()
            self.answer(200 if ok else 503, b"ok\n" if ok else b"the watch loop is stuck\n")
        elif path == "/readyz":
            ok, why = self.server.ready()
            self.answer(200 if ok else 503, (why + "\n").encode())
        elif path.startswith("/vrrp/") and (report := self.server.metrics.vrrp_report(path[6:])):
            self.answer(200, (json.dumps(report) + "\n").encode(), "application/json")
        else:
            self.answer(404, b"not found: try /, /api/v1/status, /metrics, /healthz, /readyz or /vrrp/<keepalived target>\n")

    def do_POST(self) -> None:  # noqa: N802 - a peer's drain-node --restore (docs/high-availability.md)
        if not (self.path.startswith("/vrrp/") and self.path.endswith("/handover")):
            self.refuse()  # everything else is read-only
            return
        name = self.path[6:].removesuffix("/handover")
        target = next((t for t in self.server.metrics.vrrp_targets if t.name == name), None)
        if target is None:
            self.answer(404, b"not found: try POST /vrrp/<keepalived target>/handover\n")
            return
        status, report = target.hand_over(self.client_address[0])
        self.answer(status, (json.dumps(report) + "\n").encode(), "application/json")


def placed(desired: model.Desired, names: set[str], where: dict[str, int]) -> list[model.Pool]:
    """The pools of ``desired`` named in ``names``, at their places in ``where``."""
    pools = desired.pools
    return [pools[i] for name in names
            if (i := where.get(name, len(pools))) < len(pools) and pools[i].name == name]
