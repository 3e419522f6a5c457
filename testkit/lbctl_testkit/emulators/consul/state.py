"""The emulator's whole in-memory state: catalog, health, agent, KV, sessions.

``Store`` composes the mixins (``core`` -> ``catalog`` -> ``agent`` -> ``views`` ->
``sessions``) and bootstraps what a fresh single-server Consul holds: the agent node
with a passing ``serfHealth`` check and the ``consul`` service.  It also offers a
thread-safe Python control API for tests and benchmarks (``add_node``,
``add_service``, ``set_check``...), equivalent to ``PUT /v1/catalog/register``.
Pure state: no sockets, no HTTP.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from .catalog import STATUSES
from .core import ConsulError
from .sessions import KVSessionMixin

SERF_CHECK = "serfHealth"


class Store(KVSessionMixin):
    def __init__(self, *, node_name: str = "node-a", node_address: str = "127.0.0.1",
                 datacenter: str = "dc1", clock: Callable[[], float] | None = None,
                 seed: int | None = None, check_update_interval: float = 300.0,
                 consul_service: bool = True, enable_script_checks: bool = False) -> None:
        super().__init__(clock=clock, seed=seed)
        self._init_catalog(node_name, node_address, datacenter, check_update_interval)
        self._init_agent(enable_script_checks)
        self._init_kv()
        with self._txn():
            self._put_node(node_name, node_address, meta={"consul-network-segment": ""})
            self._put_check(node_name, self._serf_check(node_name))
            if consul_service:
                self._put_service(node_name, self._service_record(
                    {"name": "consul", "port": 8300, "address": ""}, "consul"))

    def _serf_check(self, node: str, status: str = "passing") -> dict:
        rec = self._check_record(node, {}, cid=SERF_CHECK, name="Serf Health Status", svc=None,
                                 status=status)
        rec["Output"] = "Agent alive and reachable" if status == "passing" else "Agent not live or unreachable"
        return rec

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group control-API calls into one write: one index, one wake-up per watch."""
        with self._txn():
            yield

    # ------------------------------------------------------------ control API
    def add_node(self, name: str, address: str, *, meta: dict[str, str] | None = None,
                 tagged_addresses: dict[str, str] | None = None, serf_health: bool = True) -> None:
        """Register (or update) a node, with a passing ``serfHealth`` check by default."""
        with self._txn():
            self._put_node(name, address, meta=meta, tagged=tagged_addresses)
            if serf_health and SERF_CHECK not in self._checks[name]:
                self._put_check(name, self._serf_check(name))

    def remove_node(self, name: str) -> None:
        with self._txn():
            self._del_node(name)

    def add_service(self, name: str, *, node: str | None = None, service_id: str | None = None,
                    address: str = "", port: int = 0, tags: Iterable[str] = (),
                    meta: dict[str, str] | None = None, weights: dict[str, int] | None = None,
                    status: str | None = "passing", check_id: str | None = None) -> str:
        """Register one instance on *node* (default: the agent's node) through the catalog.

        With *status*, a health check ``service:<id>`` (or *check_id*) is registered too.
        Returns the service ID.
        """
        node = node or self.node_name
        sid = service_id or name
        body = {"name": name, "address": address, "port": port, "tags": list(tags),
                "meta": meta, "weights": weights}
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self._txn():
            if node not in self._nodes:
                raise KeyError(f"unknown node {node!r}; add_node() first")
            self._put_service(node, self._service_record(body, sid))
            if status is not None:
                svc = self._svcs[node][sid]
                cid = check_id or f"service:{sid}"
                rec = self._check_record(node, {}, cid=cid, name=f"Service '{name}' check", svc=svc,
                                         status=status)
                old = self._checks[node].get(cid)
                if old is not None:
                    rec["Output"] = old["Output"]
                self._put_check(node, rec)
        return sid

    def remove_service(self, service_id: str, *, node: str | None = None) -> None:
        with self._txn():
            self._del_service(node or self.node_name, service_id)

    def _find_check(self, check_id: str, node: str | None) -> str:
        if node is not None:
            if check_id not in self._checks.get(node, {}):
                raise KeyError(f"no check {check_id!r} on node {node!r}")
            return node
        nodes = [n for n, checks in self._checks.items() if check_id in checks]
        if len(nodes) != 1:
            raise KeyError(f"check {check_id!r} is on {len(nodes)} nodes; pass node=")
        return nodes[0]

    def set_check(self, check_id: str, status: str, *, node: str | None = None, output: str = "") -> None:
        """Set a check's status (any node), like a catalog re-registration of it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self._txn():
            self._set_status(self._find_check(check_id, node), check_id, status, output)

    def set_service_health(self, service_id: str, status: str, *, node: str | None = None) -> None:
        """Set every check of one instance (not its node checks) to *status*."""
        node = node or self.node_name
        with self._txn():
            if service_id not in self._svcs.get(node, {}):
                raise KeyError(f"no service {service_id!r} on node {node!r}")
            for cid in sorted(self._check_ids.get((node, service_id), ())):
                self._set_status(node, cid, status, self._checks[node][cid]["Output"])

    def set_node_health(self, node: str, status: str) -> None:
        """Flip a node's ``serfHealth`` check (a node failure affects all its services)."""
        with self._txn():
            self._find_check(SERF_CHECK, node)
            self._put_check(node, {**self._serf_check(node, status),
                                   "CreateIndex": self._checks[node][SERF_CHECK]["CreateIndex"]})

    # ------------------------------------------------------------ introspection
    def snapshot(self) -> dict[str, Any]:
        """A plain copy of the catalog, for debugging and assertions."""
        with self._lock:
            return {"index": self._index, "nodes": dict(self._nodes),
                    "services": {n: dict(s) for n, s in self._svcs.items()},
                    "checks": {n: dict(c) for n, c in self._checks.items()},
                    "kv": dict(self._kv), "sessions": dict(self._sessions)}


__all__ = ["ConsulError", "Store"]
