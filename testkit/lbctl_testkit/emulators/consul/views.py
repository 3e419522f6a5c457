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


def all_of(tests: list[Predicate]) -> Predicate | None:
    if len(tests) <= 1:
        return tests[0] if tests else None
    return lambda x: all(t(x) for t in tests)


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
                          pred: Predicate | None = None, hidden: frozenset[str] = frozenset()) -> Read:
        """``/v1/health/state/<state>`` as JSON bytes (or, for every check, a function that
        returns them: call it outside the lock), and whether *hidden* nodes dropped rows.

        Its index is the ``checks`` table index, as in Consul.
        """
        idx = lambda: self.table_index("checks")
        tests: list[Predicate] = []
        if state != "any":
            tests.append(lambda c: c["Status"] == state)
        if node_meta:
            tests.append(lambda c: meta_match(self._nodes[c["Node"]]["Meta"], node_meta))
        if pred is not None:
            tests.append(pred)
        base = all_of(tests)
        dropped = [False]
        keep = base
        if hidden:
            def keep(c: dict) -> bool:
                if base is not None and not base(c):
                    return False
                if c["Node"] in hidden:
                    dropped[0] = True
                    return False
                return True

        def build() -> tuple[int, tuple[bytes | Callable[[], bytes], bool]]:
            if keep is None:  # every check: joined by the caller, without the lock (CheckTable.select_later)
                return idx(), (self._check_table.select_later(), False)
            dropped[0] = False
            return idx(), (self._check_table.select(keep), dropped[0])
        return idx, build

    def read_health_node(self, node: str, *, pred: Predicate | None = None) -> Read:
        idx = lambda: self.table_index("checks")

        def build() -> tuple[int, list[dict]]:
            checks = self._checks.get(node, {})
            return idx(), [checks[c] for c in sorted(checks) if pred is None or pred(checks[c])]
        return idx, build

    # ------------------------------------------------------------ catalog
    def service_node(self, node: str, svc: dict) -> dict:
        """The flat ``ServiceNode`` row of catalog reads (built once per node/service record)."""
        n = self._nodes[node]
        hit = self._sn_cache.get((node, svc["ID"]))
        if hit is not None and hit[0] is n and hit[1] is svc:
            return hit[2]
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
        if self._svcs[node].get(svc["ID"]) is svc:
            self._sn_cache[(node, svc["ID"])] = (n, svc, out)
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
        """``/v1/catalog/services``: name -> union of tags; index: the ``services`` table."""
        idx = lambda: self.table_index("services")

        def build() -> tuple[int, dict[str, list[str]]]:
            if node_meta or pred is not None:
                return idx(), self._service_list(node_meta, pred)
            if self._services_list is None or self._services_list[0] != idx():
                answer = self._service_list(None, None)
                if self._services_list is not None and answer == self._services_list[1]:
                    answer = self._services_list[1]  # the same answer (an instance came, went or was edited):
                    # the same object, so that its encoded body is kept too (Api.catalog_services)
                self._services_list = (idx(), answer)
            return self._services_list
        return idx, build

    def _service_list(self, node_meta: dict[str, str] | None, pred: Predicate | None) -> dict[str, list[str]]:
        if not node_meta and pred is None:
            return self._all_services()
        tags: dict[str, dict[str, None]] = {}
        for node, svcs in self._svcs.items():
            if node_meta and not meta_match(self._nodes[node]["Meta"], node_meta):
                continue
            for svc in svcs.values():
                if pred is None or pred(self.service_node(node, svc)):
                    tags.setdefault(svc["Service"], {}).update(dict.fromkeys(svc["Tags"]))
        return {name: list(tags[name]) for name in sorted(tags)}

    def _all_services(self) -> dict[str, list[str]]:
        """Every service's tags (those of its instances, node by node, each in its node's
        order).  The last answer is kept and only the services written since are read
        again: a write costs one service, not 10,000 names sorted and 50,000 instances; the
        answer is a new object only when a service's tags changed (Api.catalog_services
        keeps an equal one's body)."""
        rank: dict[str, int] = {}  # each node's place, worked out once if a service is read

        def tags_of(name: str) -> list[str]:
            tags = self._tags_of.get(name)
            if tags is None:
                if not rank:
                    rank.update({node: i for i, node in enumerate(self._svcs)})
                members = sorted(self._by_name[name], key=lambda m: (rank[m[0]], self._placed[m]))
                tags = self._tags_of[name] = list(dict.fromkeys(
                    t for node, sid in members for t in self._svcs[node][sid]["Tags"]))
            return tags

        out = self._all_tags
        if out is None:
            out = {name: tags_of(name) for name in sorted(self._by_name)}
        else:
            for name in self._stale:
                tags = tags_of(name)
                if tags != out[name]:
                    out = dict(out) if out is self._all_tags else out
                    out[name] = tags
        self._stale.clear()
        self._all_tags = out
        return out

    def read_catalog_nodes(self, *, node_meta: dict[str, str] | None = None,
                           pred: Predicate | None = None) -> Read:
        idx = lambda: self.table_index("nodes")

        def build() -> tuple[int, list[dict]]:
            out = [n for _, n in sorted(self._nodes.items())
                   if (not node_meta or meta_match(n["Meta"], node_meta)) and (pred is None or pred(n))]
            return idx(), out
        return idx, build

    def read_catalog_node(self, node: str, pred: Predicate | None = None) -> Read:
        """``/v1/catalog/node/<node>``; *pred* (``filter``) applies to each entry of ``Services``."""
        idx = lambda: self.table_index("nodes", "services")

        def build() -> tuple[int, dict | None]:
            if node not in self._nodes:
                return idx(), None
            svcs = {sid: self.agent_service(s) for sid, s in sorted(self._svcs[node].items())
                    if pred is None or pred(s)}
            return idx(), {"Node": self._nodes[node], "Services": svcs}
        return idx, build

    def read_catalog_connect(self, name: str, pred: Predicate | None = None) -> Read:
        """``/v1/catalog/connect/<name>``: its Connect-native instances and the proxies for it."""
        idx = lambda: self.table_index("services")

        def build() -> tuple[int, list[dict]]:
            out = []
            for node, svcs in sorted(self._svcs.items()):
                for _, svc in sorted(svcs.items()):
                    native = svc["Service"] == name and bool(svc["Connect"].get("Native"))
                    proxy = svc.get("Kind") == "connect-proxy" and svc["Proxy"].get("DestinationServiceName") == name
                    if (native or proxy) and (pred is None or pred(self.service_node(node, svc))):
                        out.append(self.service_node(node, svc))
            return idx(), out
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
        """The agent's local view: an output not yet synced to the catalog shows here already."""
        with self._lock:
            checks = self._checks.get(self.node_name, {})
            out = {cid: checks[cid] for cid in sorted(self._agent_checks) if cid in checks}
            for cid, state in self._agent_checks.items():
                if cid in out and state is not None and state["pending"] is not None:
                    out[cid] = {**out[cid], "Output": state["output"]}
        return {k: v for k, v in out.items() if pred is None or pred(v)}

    @property
    def server_address(self) -> str:
        """This single server's RPC address: the leader, the only raft peer."""
        return f"{self.node_address}:8300"

    def _member(self, name: str, address: str, *, wan: bool = False) -> dict[str, Any]:
        """A serf member as ``/v1/agent/members`` and ``/v1/agent/self`` show it."""
        server = name == self.node_name
        tags = {"dc": self.datacenter, "role": "consul" if server else "node", "build": "1.16.0:emulator"}
        return {"Name": f"{name}.{self.datacenter}" if wan else name, "Addr": address,
                "Port": 8302 if wan else 8301, "Tags": tags, "Status": 1,
                "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4}

    def agent_self(self, leader: bool = True) -> dict[str, Any]:
        with self._lock:
            node = self._nodes.get(self.node_name, {})
        return {
            "Config": {"Datacenter": self.datacenter, "NodeName": self.node_name,
                       "NodeID": node.get("ID", self.node_id(self.node_name)), "Server": True,
                       "Revision": "emulator", "Version": "1.16.0", "PrimaryDatacenter": self.datacenter},
            "Coord": {"Vec": [0.0] * 8, "Error": 1.5, "Adjustment": 0.0, "Height": 1e-05},
            "Member": self._member(self.node_name, self.node_address),
            "Meta": node.get("Meta", {}),
            "Stats": {"consul": {"leader": str(leader).lower(), "known_servers": "1",
                                 "leader_addr": self.server_address if leader else "", "server": "true"}},
            "DebugConfig": {"Datacenter": self.datacenter, "NodeName": self.node_name},
            "xDS": {"SupportedProxies": {"envoy": []}, "Port": -1, "Ports": {"Plaintext": -1, "TLS": -1}},
        }

    def members(self, wan: bool = False) -> list[dict[str, Any]]:
        """LAN members: the catalog's nodes; WAN members: the servers (this agent)."""
        with self._lock:
            if wan:
                return [self._member(self.node_name, self.node_address, wan=True)]
            return [self._member(n, rec["Address"]) for n, rec in sorted(self._nodes.items())]
