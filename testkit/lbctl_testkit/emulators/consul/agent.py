"""The local agent's API: service/check registration, TTL updates, maintenance mode.

The agent owns the services and checks registered through ``/v1/agent/*`` on its own
node (``node_name``); they live in the shared catalog (see ``catalog.py``).  TTL checks
start ``critical`` unless a status is given, restart their timer on every
``pass``/``warn``/``fail``, and turn ``critical`` ("TTL expired") when it lapses.
Re-registering keeps a check's status and output, like Consul's check snapshot.  An
output-only update is synced after ``check_update_interval`` (Consul's deferred sync).
"""

from __future__ import annotations

from typing import Any, Callable

from .catalog import (NODE_MAINT, NODE_MAINT_REASON, SERVICE_MAINT_PREFIX, SERVICE_MAINT_REASON,
                      STATUSES, CatalogMixin, check_seconds, check_type, ci, unknown_check, validate_check)
from .core import ConsulError
from .probes import DEFAULT_TIMEOUT, ProbeLoop, Result, http_probe, script_probe, tcp_probe

SCRIPTS_DISABLED = ("Scripts are disabled on this agent from remote calls; "
                    "to enable, configure 'enable_script_checks' to true")


class AgentMixin(CatalogMixin):
    def _init_agent(self, enable_script_checks: bool = False) -> None:
        self.enable_script_checks = enable_script_checks  # Consul's default: refused
        self._probes: dict[str, ProbeLoop] = {}  # running HTTP/TCP/script checks
        self._timer_handlers["ttl"] = self._ttl_expired
        self._timer_handlers["defer"] = self._deferred_output

    def _vet_script(self, c: dict) -> None:
        if check_type(c) == "script" and not self.enable_script_checks:
            raise ConsulError(500, SCRIPTS_DISABLED)

    # ------------------------------------------------------------ agent API
    def agent_register_service(self, body: dict, replace_existing_checks: bool = False) -> None:
        b = ci(body)
        if not b.get("name"):
            raise ConsulError(400, "Missing service name")
        sid = str(b.get("id") or b["name"])
        w = ci(b.get("weights") or {})
        if b.get("weights") is not None and int(w.get("passing", 1) or 0) < 1:
            raise ConsulError(400, "Invalid Weights: Passing must be greater than 0")
        rec = self._service_record(b, sid)
        defs = ([b["check"]] if b.get("check") else []) + list(b.get("checks") or [])
        parsed = [ci(d) for d in defs]
        for c in parsed:
            validate_check(c)
            self._vet_script(c)
        node = self.node_name
        with self._txn():
            for i, c in enumerate(parsed, 1):
                if (c.get("status") or "passing") not in STATUSES:
                    raise ConsulError(400, f"Invalid check status: {c['status']!r}")
            self._put_service(node, rec)
            self._agent_services.add(sid)
            keep = set()
            for i, c in enumerate(parsed, 1):
                cid = str(c.get("checkid") or c.get("id") or
                          (f"service:{sid}" if len(parsed) == 1 else f"service:{sid}:{i}"))
                name = c.get("name") or f"Service '{rec['Service']}' check"
                self._agent_add_check(cid, name, c, self._svcs[node][sid])
                keep.add(cid)
            if replace_existing_checks:
                for cid in sorted(self._check_ids.get((node, sid), ())):
                    if cid not in keep and not cid.startswith(SERVICE_MAINT_PREFIX):
                        self._del_check(node, cid)

    def _agent_add_check(self, cid: str, name: str, c: dict, svc: dict | None) -> None:
        node = self.node_name
        prev = self._checks[node].get(cid)
        status = c.get("status") or (prev["Status"] if prev else "critical")
        if status not in STATUSES:
            raise ConsulError(400, f"Invalid check status: {status!r}")
        rec = self._check_record(node, c, cid=cid, name=name, svc=svc, status=status)
        if prev is not None and not c.get("status"):
            rec["Output"] = prev["Output"]
        self._put_check(node, rec)
        self._stop_probe(cid)
        ttl = check_seconds(c["ttl"]) if c.get("ttl") else None
        state = {"ttl": ttl, "deadline": None, "output": rec["Output"], "pending": None}
        self._agent_checks[cid] = state
        if ttl:
            state["deadline"] = self.now() + ttl
            self._schedule(state["deadline"], "ttl", cid)
        probe = _probe_for(c)
        if probe is not None:
            interval = check_seconds(c["interval"])
            loop = ProbeLoop(probe, interval, self.random() * interval,
                             lambda status, output: self._probe_result(cid, loop, status, output), cid)
            self._probes[cid] = loop

    def _stop_probe(self, cid: str) -> None:
        loop = self._probes.pop(cid, None)
        if loop is not None:
            loop.stop()

    def _probe_result(self, cid: str, loop: ProbeLoop, status: str, output: str) -> None:
        with self._txn():
            state = self._agent_checks.get(cid)
            if self._probes.get(cid) is loop and state is not None:
                self._agent_set(cid, state, status, output)

    def _on_check_removed(self, node: str, cid: str) -> None:
        super()._on_check_removed(node, cid)
        if node == self.node_name:
            self._stop_probe(cid)

    def stop_timers(self) -> None:
        with self._lock:
            for cid in list(self._probes):
                self._stop_probe(cid)
        super().stop_timers()

    def agent_deregister_service(self, sid: str) -> None:
        with self._txn():
            if sid in self._agent_services:
                self._del_service(self.node_name, sid)

    def agent_register_check(self, body: dict) -> None:
        c = ci(body)
        if not c.get("name"):
            raise ConsulError(400, "Missing check name")
        validate_check(c)
        cid = str(c.get("checkid") or c.get("id") or c["name"])
        with self._txn():
            svc = None
            if c.get("serviceid"):
                if c["serviceid"] not in self._agent_services:
                    raise ConsulError(404, f'ServiceID "{c["serviceid"]}" does not exist')
                svc = self._svcs[self.node_name][c["serviceid"]]
            self._vet_script(c)
            self._agent_add_check(cid, c["name"], c, svc)

    def agent_deregister_check(self, cid: str) -> None:
        with self._txn():
            if cid not in self._agent_checks:
                raise ConsulError(404, unknown_check(cid))
            self._del_check(self.node_name, cid)

    def agent_update_ttl(self, cid: str, status: str, output: str) -> None:
        """``/v1/agent/check/{pass,warn,fail}``: set status and output, restart the TTL."""
        with self._txn():
            if cid not in self._agent_checks:
                raise ConsulError(404, unknown_check(cid))
            state = self._agent_checks[cid]
            if state is None or state["ttl"] is None:
                raise ConsulError(500, f'CheckID "{cid}" does not have associated TTL')
            state["deadline"] = self.now() + state["ttl"]
            self._schedule(state["deadline"], "ttl", cid)
            self._agent_set(cid, state, status, output)

    def _agent_set(self, cid: str, state: dict, status: str, output: str) -> None:
        """A local check's new result: a status change syncs now, an output-only one later."""
        state["output"] = output
        chk = self._checks[self.node_name][cid]
        if chk["Status"] == status and self.check_update_interval > 0:
            if chk["Output"] != output and state["pending"] is None:  # deferred sync
                state["pending"] = self.now() + self.check_update_interval
                self._schedule(state["pending"], "defer", cid)
            return
        state["pending"] = None
        self._set_status(self.node_name, cid, status, output)

    def _ttl_expired(self, cid: str, deadline: float) -> None:
        state = self._agent_checks.get(cid)
        if not state or state["deadline"] != deadline:
            return
        last = state["output"]
        out = "TTL expired" + (f" (last output before timeout follows): {last}" if last else "")
        state["pending"] = None
        with self._txn():
            self._set_status(self.node_name, cid, "critical", out)

    def _deferred_output(self, cid: str, due: float) -> None:
        state = self._agent_checks.get(cid)
        if not state or state["pending"] != due:
            return
        state["pending"] = None
        chk = self._checks[self.node_name][cid]
        with self._txn():
            self._set_status(self.node_name, cid, chk["Status"], state["output"])

    def _timer_live(self, kind: str, ident: Any, deadline: float) -> bool:
        if kind in ("ttl", "defer"):
            state = self._agent_checks.get(ident)
            return bool(state) and state["deadline" if kind == "ttl" else "pending"] == deadline
        return super()._timer_live(kind, ident, deadline)

    def agent_service_maintenance(self, sid: str, enable: bool, reason: str) -> None:
        node = self.node_name
        with self._txn():
            if sid not in self._agent_services:
                raise ConsulError(404, f'No service registered with ID "{sid}"')
            cid = SERVICE_MAINT_PREFIX + sid
            if not enable:
                if cid in self._checks[node]:
                    self._del_check(node, cid)
                return
            if cid in self._checks[node]:
                return
            svc = self._svcs[node][sid]
            rec = self._check_record(node, {"notes": reason or SERVICE_MAINT_REASON}, cid=cid,
                                     name="Service Maintenance Mode", svc=svc, status="critical")
            self._put_check(node, rec)
            self._agent_checks[cid] = None

    def agent_node_maintenance(self, enable: bool, reason: str) -> None:
        node = self.node_name
        with self._txn():
            if not enable:
                if NODE_MAINT in self._checks[node]:
                    self._del_check(node, NODE_MAINT)
                return
            if NODE_MAINT in self._checks[node]:
                return
            rec = self._check_record(node, {"notes": reason or NODE_MAINT_REASON}, cid=NODE_MAINT,
                                     name="Node Maintenance Mode", svc=None, status="critical")
            self._put_check(node, rec)
            self._agent_checks[NODE_MAINT] = None


def _probe_for(c: dict) -> Callable[[], Result] | None:
    """The probe of an HTTP, TCP or script check definition (keys as ``ci()`` gives them)."""
    kind = check_type(c)
    timeout = check_seconds(c["timeout"]) if c.get("timeout") else DEFAULT_TIMEOUT
    if kind == "http":
        return lambda: http_probe(str(c["http"]), method=str(c.get("method") or "GET"), headers=c.get("header"),
                                  body=str(c.get("body") or ""), timeout=timeout,
                                  tls_skip_verify=bool(c.get("tlsskipverify")))
    if kind == "tcp":
        return lambda: tcp_probe(str(c["tcp"]), timeout=timeout)
    if kind == "script":
        args = [str(a) for a in (c.get("args") or c.get("scriptargs") or [])]
        return lambda: script_probe(args, timeout=check_seconds(c["timeout"]) if c.get("timeout") else 30.0)
    return None
