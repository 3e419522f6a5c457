"""Catalog and health reads, in the shapes of Consul's HTTP API (docs/upstream.md#consul-health).

Each read is a pair: an *index* function (what a blocking query compares against)
and a *build* function returning ``(index, payload)``; both run under the store lock.
Payloads reference the stored copy-on-write records, so the HTTP layer may serialize
them after the lock is released.  Filters (``filter.py`` predicates), tags and
node-meta apply inside the query, as on a Consul server; ``passing`` is applied by the
HTTP layer after blocking, as Consul's handler does.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .agent import AgentMixin
from .filter import Predicate

Read = tuple[Callable[[], int], Callable[[], tuple[int, Any]]]


def tags_match(tags: Iterable[str], wanted: list[str]) -> bool:
    """Consul's ``serviceTagFilter``: every wanted tag present, case-insensitively."""
    have = {t.lower() for t in tags}
    return all(w.lower() in have for w in wanted)


def meta_match(meta: dict | None, wanted: dict[str, str]) -> bool:
    meta = meta or {}
    return all(k in meta and meta[k] == v for k, v in wanted.items())


class ViewsMixin(AgentMixin):
    # ------------------------------------------------------------ indexes
    def service_index(self, name: str) -> int:
        """Per-service index; a missing service gives the last extinction index."""
        idx = self._svc_index.get(name)
        if idx is not None:
            return idx
        return self._extinction or self.table_index("nodes", "services")

    # ------------------------------------------------------------ health
    def _instances(self, name: str) -> list[tuple[str, dict]]:
        out = []
        for node, sid in sorted(self._by_name.get(name, ())):
            out.append((node, self._svcs[node][sid]))
        return out

    def _entry(self, node: str, svc: dict) -> dict:
        return {"Node": self._nodes[node], "Service": svc,
                "Checks": self._checks_of(node, "") + self._checks_of(node, svc["ID"])}

    def _checks_of(self, node: str, sid: str) -> list[dict]:
        checks = self._checks[node]
        return [checks[c] for c in sorted(self._check_ids.get((node, sid), ()))]

    def read_health_service(self, name: str, *, tags: list[str] | None = None,
                            node_meta: dict[str, str] | None = None,
                            pred: Predicate | None = None) -> Read:
        def build() -> tuple[int, list[dict]]:
            out = []
            for node, svc in self._instances(name):
                if tags and not tags_match(svc["Tags"], tags):
                    continue
                if node_meta and not meta_match(self._nodes[node]["Meta"], node_meta):
                    continue
                entry = self._entry(node, svc)
                if pred is None or pred(entry):
                    out.append(entry)
            return self.service_index(name), out
        return (lambda: self.service_index(name)), build

    def read_health_checks(self, name: str, *, node_meta: dict[str, str] | None = None,
                           pred: Predicate | None = None) -> Read:
        def build() -> tuple[int, list[dict]]:
            out = []
            for node, svc in self._instances(name):
                if node_meta and not meta_match(self._nodes[node]["Meta"], node_meta):
                    continue
                out.extend(c for c in self._checks_of(node, svc["ID"]) if pred is None or pred(c))
            return self.service_index(name), out
        return (lambda: self.service_index(name)), build

    def read_health_state(self, state: str, *, node_meta: dict[str, str] | None = None,
                          pred: Predicate | None = None) -> Read:
        idx = lambda: self.table_index("checks")

        def build() -> tuple[int, list[dict]]:
            out = []
            for node in sorted(self._checks):
                if node_meta and not meta_match(self._nodes[node]["Meta"], node_meta):
                    continue
                for cid in sorted(self._checks[node]):
                    chk = self._checks[node][cid]
                    if (state == "any" or chk["Status"] == state) and (pred is None or pred(chk)):
                        out.append(chk)
            return idx(), out
        return idx, build

    def read_health_node(self, node: str, *, pred: Predicate | None = None) -> Read:
        idx = lambda: self.table_index("checks")

        def build() -> tuple[int, list[dict]]:
            checks = self._checks.get(node, {})
            return idx(), [checks[c] for c in sorted(checks) if pred is None or pred(checks[c])]
        return idx, build

    # ------------------------------------------------------------ catalog
    def service_node(self, node: str, svc: dict) -> dict:
        n = self._nodes[node]
        out = {"ID": n["ID"], "Node": node, "Address": n["Address"], "Datacenter": n["Datacenter"],
               "TaggedAddresses": n["TaggedAddresses"], "NodeMeta": n["Meta"],
               "ServiceKind": svc.get("Kind", ""), "ServiceID": svc["ID"], "ServiceName": svc["Service"],
               "ServiceTags": svc["Tags"], "ServiceAddress": svc["Address"],
               "ServiceWeights": svc["Weights"], "ServiceMeta": svc["Meta"] or {},
               "ServicePort": svc["Port"], "ServiceEnableTagOverride": svc["EnableTagOverride"],
               "ServiceProxy": svc["Proxy"], "ServiceConnect": svc["Connect"], "ServicePeerName": "",
               "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"]}
        if svc.get("TaggedAddresses"):
            out["ServiceTaggedAddresses"] = svc["TaggedAddresses"]
        return out

    def read_catalog_service(self, name: str, *, tags: list[str] | None = None,
                             node_meta: dict[str, str] | None = None,
                             pred: Predicate | None = None) -> Read:
        def build() -> tuple[int, list[dict]]:
            out = []
            for node, svc in self._instances(name):
                if tags and not tags_match(svc["Tags"], tags):
                    continue
                if node_meta and not meta_match(self._nodes[node]["Meta"], node_meta):
                    continue
                row = self.service_node(node, svc)
                if pred is None or pred(row):
                    out.append(row)
            return self.service_index(name), out
        return (lambda: self.service_index(name)), build

    def read_catalog_services(self, *, node_meta: dict[str, str] | None = None,
                              pred: Predicate | None = None) -> Read:
        idx = lambda: self.table_index("services")

        def build() -> tuple[int, dict[str, list[str]]]:
            out: dict[str, list[str]] = {}
            for name in sorted(self._by_name):
                tags: dict[str, None] = {}
                hit = False
                for node, svc in self._instances(name):
                    if node_meta and not meta_match(self._nodes[node]["Meta"], node_meta):
                        continue
                    if pred is not None and not pred(self.service_node(node, svc)):
                        continue
                    hit = True
                    tags.update(dict.fromkeys(svc["Tags"]))
                if hit:
                    out[name] = list(tags)
            return idx(), out
        return idx, build

    def read_catalog_nodes(self, *, node_meta: dict[str, str] | None = None,
                           pred: Predicate | None = None) -> Read:
        idx = lambda: self.table_index("nodes")

        def build() -> tuple[int, list[dict]]:
            out = [n for _, n in sorted(self._nodes.items())
                   if (not node_meta or meta_match(n["Meta"], node_meta)) and (pred is None or pred(n))]
            return idx(), out
        return idx, build

    def read_catalog_node(self, node: str) -> Read:
        idx = lambda: self.table_index("nodes", "services")

        def build() -> tuple[int, dict | None]:
            if node not in self._nodes:
                return idx(), None
            svcs = {sid: self.agent_service(s) for sid, s in sorted(self._svcs[node].items())}
            return idx(), {"Node": self._nodes[node], "Services": svcs}
        return idx, build

    # ------------------------------------------------------------ agent
    def agent_service(self, svc: dict) -> dict:
        out = {k: svc[k] for k in ("ID", "Service", "Tags", "Meta", "Port", "Address")}
        if svc.get("Kind"):
            out["Kind"] = svc["Kind"]
        if svc.get("TaggedAddresses"):
            out["TaggedAddresses"] = svc["TaggedAddresses"]
        out.update({"Weights": svc["Weights"], "EnableTagOverride": svc["EnableTagOverride"],
                    "Datacenter": self.datacenter})
        out["Meta"] = out["Meta"] or {}
        return out

    def agent_services(self, pred: Predicate | None = None) -> dict[str, dict]:
        with self._lock:
            svcs = self._svcs.get(self.node_name, {})
            out = {sid: self.agent_service(svcs[sid]) for sid in sorted(self._agent_services)}
        return {k: v for k, v in out.items() if pred is None or pred(v)}

    def agent_checks(self, pred: Predicate | None = None) -> dict[str, dict]:
        with self._lock:
            checks = self._checks.get(self.node_name, {})
            out = {cid: checks[cid] for cid in sorted(self._agent_checks) if cid in checks}
        return {k: v for k, v in out.items() if pred is None or pred(v)}

    def agent_self(self) -> dict[str, Any]:
        with self._lock:
            node = self._nodes.get(self.node_name, {})
        return {
            "Config": {"Datacenter": self.datacenter, "NodeName": self.node_name,
                       "NodeID": node.get("ID", self.node_id(self.node_name)), "Server": True,
                       "Revision": "emulator", "Version": "1.16.0", "PrimaryDatacenter": self.datacenter},
            "Member": {"Name": self.node_name, "Addr": self.node_address, "Port": 8301,
                       "Tags": {"dc": self.datacenter, "role": "consul", "build": "1.16.0:emulator"},
                       "Status": 1},
            "Meta": node.get("Meta", {}),
            "Stats": {"consul": {"leader": "true", "known_servers": "1"}},
            "DebugConfig": {"Datacenter": self.datacenter, "NodeName": self.node_name},
        }

    def members(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"Name": n, "Addr": rec["Address"], "Port": 8301, "Status": 1,
                     "Tags": {"dc": self.datacenter}} for n, rec in sorted(self._nodes.items())]
