"""The one place lbctl talks to a BIG-IP.

iControl REST goes through f5-sdk: its ``ManagementRoot`` (token login, the
device's version) and that root's REST session for pools, members, nodes,
monitors, transactions, ``sys config save`` and config-sync.  AS3 goes through
plain requests on the same authenticated session.  Everything above this module
sees lbctl's own types (``bigip_model``), so the SDK can be replaced here alone.

f5-sdk is optional (``pip install 'lbctl[bigip]'``) and imported on first use,
with its timeouts (lbctl/targets/bigip/sdk.py).  It never retries: here connection errors
and 5xx answers are retried with exponential backoff, and a 401 (an expired or
revoked token) logs in again once.  Writes inside a transaction are never
retried one by one: the whole transaction is (``commit``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Iterable

import requests

from lbctl.errors import ApplyError, ConfigError, LbctlError, Temporary
from lbctl.targets.bigip import model as bm
from lbctl.targets.bigip.diff import Op, rest_call, segment
from lbctl.targets.bigip import sdk
from lbctl.targets.bigip.sdk import LOGIN, Access

RETRY_STATUS = frozenset({500, 502, 503, 504})
COORDINATION = "X-F5-REST-Coordination-Id"
MONITOR_TYPES = ("http", "tcp")
MAX_BACKOFF = 30.0


class Rejected(LbctlError):
    """The device answered a request with a 4xx (or a 5xx that was not retried)."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


def message_of(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    text = body.get("message") if isinstance(body, dict) else None
    return str(text) if text else f"HTTP {resp.status_code}"


def stat(body: Any, name: str) -> str:
    """One value of a ``...stats`` answer (``entries.<link>.nestedStats.entries.<name>.description``)."""
    try:
        entry = next(iter(body["entries"].values()))
        return str(entry["nestedStats"]["entries"][name]["description"]).strip()
    except (KeyError, TypeError, StopIteration, AttributeError):
        return "unknown"


class BigIP:
    """One device: reads lbctl's state from it and writes changes to it."""

    def __init__(self, name: str, access: Access, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.access = access
        self.sleep = sleep
        self._root: Any = None
        self.version: str | None = None

    # -- transport ------------------------------------------------------------------------
    @property
    def root(self) -> Any:
        if self._root is None:
            self._root = self._attempt(self._connect, "connect", idempotent=True)
            self.version = self._root.tmos_version
        return self._root

    def _connect(self) -> Any:
        return sdk.load().Root(self.access, self.access.password())

    def request(self, method: str, path: str, *, params: str | None = None, body: Any = None,
                headers: dict | None = None, idempotent: bool | None = None, timeout: float | None = None,
                accept: Iterable[int] = ()) -> requests.Response:
        """One request to ``/mgmt<path>``; retried when that is safe.

        :raises Rejected: a 4xx (or an unretried 5xx).  :raises Temporary: still
            failing after the retries.  :raises ConfigError: TLS or login failed.
        """
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["json"] = body
        if headers:
            kwargs["headers"] = headers
        if timeout:
            kwargs["timeout"] = timeout
        url = f"{self.access.url}/mgmt{path}"
        safe = method == "GET" if idempotent is None else idempotent
        return self._attempt(lambda: getattr(self.root.icrs, method.lower())(url, **kwargs),
                             f"{method} {path}", safe, frozenset(accept))

    def raw(self, method: str, path: str, *, body: Any = None, timeout: float | None = None,
            idempotent: bool | None = None, accept: Iterable[int] = ()) -> requests.Response:
        """A plain requests call (AS3) on the SDK's authenticated session; ``verify`` passed per call,
        because REQUESTS_CA_BUNDLE would override the session's."""
        url = f"{self.access.url}/mgmt{path}"
        safe = method == "GET" if idempotent is None else idempotent
        return self._attempt(lambda: self.root.icrs.session.request(
            method, url, json=body, verify=self.access.verify, timeout=timeout or self.access.timeout),
            f"{method} {path}", safe, frozenset(accept))

    def _attempt(self, call: Callable[[], Any], what: str, idempotent: bool, accept: frozenset = frozenset()) -> Any:
        f5 = sdk.load()
        relogged, failures = False, 0
        while True:
            try:
                result = call()
            except f5.HTTPError as exc:
                result = exc.response
                if result is None:
                    raise Temporary(f"{self.name}: {what}: {exc}") from None
            except requests.exceptions.SSLError as exc:
                raise ConfigError(f"{self.name}: TLS verification of {self.access.url} failed ({short(exc)}); "
                                  "set ca_bundle to the CA that signed the device's certificate") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{what}: cannot reach {self.access.url}: {short(exc)}"
                if not idempotent:
                    raise Temporary(f"{self.name}: {problem}") from None
                result = None
            if isinstance(result, requests.Response):
                status = result.status_code
                if 200 <= status < 207 or status in accept:
                    return result
                if status == 401 and LOGIN in result.url:
                    raise ConfigError(f"{self.name}: login to {self.access.url} as {self.access.username} "
                                      f"failed: {message_of(result)}")
                if status == 401 and not relogged:
                    relogged = True            # the token expired or was revoked: log in again
                    self._reset_token()
                    continue
                if status not in RETRY_STATUS:
                    raise Rejected(status, f"{self.name}: {what}: {message_of(result)}", _json(result))
                problem = f"{what}: {status} {message_of(result)}"
                if not idempotent:
                    raise Temporary(f"{self.name}: {problem}")
            elif result is not None:
                return result
            failures += 1
            if failures > self.access.retries:
                raise Temporary(f"{self.name}: {problem} (gave up after {failures} attempts)")
            self.sleep(min(MAX_BACKOFF, self.access.backoff * 2 ** (failures - 1)))

    def _reset_token(self) -> None:
        if self._root is not None:
            self._root.icrs.session.auth.token = None

    # -- reading --------------------------------------------------------------------------
    def read(self, partition: str, monitors: bool = True) -> bm.DeviceState:
        """Every pool (with its members) and custom http/tcp monitor in ``partition``."""
        raw = self.request("GET", "/tm/ltm/pool", params=f"$filter=partition+eq+{partition}&expandSubcollections=true"
                           ).json()
        pools = {p["name"]: bm.parse_pool(p) for p in raw.get("items", []) if in_partition(p, partition)}
        found = self.read_monitors(partition) if monitors else {}
        if not pools and partition != "Common":  # an empty read: is the partition there at all?
            if self.request("GET", f"/tm/auth/partition/{partition}", accept=(404,)).status_code == 404:
                raise ConfigError(f"{self.name}: partition {partition} does not exist on {self.access.url}; "
                                  "create it, or set partition")
        return bm.DeviceState(partition, pools, found)

    def read_monitors(self, partition: str) -> dict[str, bm.MonitorSpec]:
        found = {}
        for mtype in MONITOR_TYPES:
            items = self.request("GET", f"/tm/ltm/monitor/{mtype}", params=f"$filter=partition+eq+{partition}"
                                 ).json().get("items", [])
            found.update({m["name"]: bm.parse_monitor(m, mtype) for m in items if in_partition(m, partition)})
        return found

    def read_pools(self, partition: str, names: Iterable[str]) -> dict[str, bm.PoolSpec]:
        """Just these pools (with members), one request each; absent ones are left out."""
        out = {}
        for name in names:
            resp = self.request("GET", f"/tm/ltm/pool/{segment(partition, name)}", params="expandSubcollections=true",
                                accept=(404,))
            if resp.status_code == 200:
                out[name] = bm.parse_pool(resp.json())
        return out

    def complete(self, state: bm.DeviceState, missing: Iterable) -> bm.DeviceState:
        """``state`` with what a plan asked for: nodes, virtual servers, member connections."""
        changes: dict[str, Any] = {}
        for need in missing:
            if need == "nodes":
                items = self.request("GET", "/tm/ltm/node", params=f"$filter=partition+eq+{state.partition}"
                                     ).json().get("items", [])
                changes["nodes"] = {n["name"]: n.get("description", "") for n in items if in_partition(n, state.partition)}
            elif need == "virtuals":
                items = self.request("GET", "/tm/ltm/virtual", params="$select=fullPath,pool").json().get("items", [])
                prefix = f"/{state.partition}/"
                changes["virtual_pools"] = {v["pool"][len(prefix):]: v["fullPath"] for v in items
                                            if v.get("pool", "").startswith(prefix)}
            else:
                conns = dict(changes.get("connections", state.connections))
                conns[need[1]] = self.member_connections(state.partition, need[1])
                changes["connections"] = conns
        return replace(state, **changes)

    def member_connections(self, partition: str, pool: str) -> dict[str, int]:
        """Current server-side connections of each member of ``pool``."""
        body = self.request("GET", f"/tm/ltm/pool/{segment(partition, pool)}/members/stats").json()
        out = {}
        for key, entry in (body.get("entries") or {}).items():
            stats = (entry.get("nestedStats") or {}).get("entries") or {}
            name = key.split("/members/", 1)[-1].rsplit("/stats", 1)[0].replace("%25", "%").split("~")[-1]
            out[name] = int((stats.get("serverside.curConns") or {}).get("value", 0))
        return out

    # -- writing: one transaction -------------------------------------------------------
    def commit(self, partition: str, ops: Iterable[Op], validate_only: bool = False) -> None:
        """Apply ``ops`` in one transaction: all of them, or (on any error) none.

        :raises ApplyError: the device rejected the change, naming the object; nothing changed.
        :raises Temporary: the device kept failing; nothing changed (or, if it
            failed while committing, the next sync reads what did).
        """
        ops = list(ops)
        failures = 0
        while True:
            try:
                return self._transaction(partition, ops, validate_only)
            except Temporary as exc:
                failures += 1
                if failures > self.access.retries:
                    raise Temporary(f"{exc} (gave up after {failures} transactions)") from None
                self.sleep(min(MAX_BACKOFF, self.access.backoff * 2 ** (failures - 1)))

    def _transaction(self, partition: str, ops: list[Op], validate_only: bool) -> None:
        tid = str(self.request("POST", "/tm/transaction/", body={}, idempotent=True).json()["transId"])
        header = {COORDINATION: tid}
        for op in ops:
            method, path, body = rest_call(partition, op)
            try:
                self.request(method, path, body=body, headers=header, idempotent=False)
            except Temporary:
                self._discard(tid)   # commit() starts a new one
                raise
            except Rejected as exc:
                self._discard(tid)
                raise ApplyError(f"{self.name}: {op.label}: the device rejected it: {device_text(exc)}; "
                                 "nothing was changed") from None
        try:
            self.request("PATCH", f"/tm/transaction/{tid}", idempotent=False,
                         body={"state": "VALIDATING", "validateOnly": validate_only})
        except Rejected as exc:
            raise ApplyError(f"{self.name}: {failed_op(exc, ops)}the device rejected the transaction: "
                             f"{device_text(exc)}") from None
        except Temporary:
            self._confirm(tid)

    def _confirm(self, tid: str) -> None:
        """The commit got no answer: ask the device what became of the transaction."""
        resp = self.request("GET", f"/tm/transaction/{tid}", accept=(404,))
        state = resp.json().get("state") if resp.status_code == 200 else None
        if state == "COMPLETED":
            return
        if state == "FAILED":
            raise ApplyError(f"{self.name}: the device rejected the transaction: {resp.json().get('failureReason')}")
        raise Temporary(f"{self.name}: the device did not confirm transaction {tid} (state {state or 'gone'})")

    def _discard(self, tid: str) -> None:
        try:
            self.request("DELETE", f"/tm/transaction/{tid}", idempotent=True, accept=(404,))
        except LbctlError:
            pass  # it expires by itself

    # -- after a change -------------------------------------------------------------------
    def save_config(self) -> None:
        """``tmsh save sys config``: the change survives a reboot."""
        self._exec(lambda: self.root.tm.sys.config.exec_cmd("save"), "save sys config")

    def config_sync(self, group: str) -> None:
        """``run cm config-sync to-group <group>`` (HA pairs)."""
        self._exec(lambda: self.root.tm.cm.exec_cmd("run", utilCmdArgs=f"config-sync to-group {group}"),
                   f"config-sync to-group {group}")

    def sync_status(self) -> tuple[str, str]:
        """``cm/sync-status``: its status (In Sync, Changes Pending, Syncing, Sync Failure, ...) and summary."""
        body = self.request("GET", "/tm/cm/sync-status").json()
        return stat(body, "status"), stat(body, "summary")

    def failover_state(self) -> str:
        """``cm/failover-status``: ACTIVE, STANDBY, OFFLINE or FORCED OFFLINE."""
        return stat(self.request("GET", "/tm/cm/failover-status").json(), "status")

    def _exec(self, call: Callable[[], Any], what: str) -> None:
        try:
            self._attempt(call, what, idempotent=True)
        except Rejected as exc:
            raise ApplyError(f"{exc}") from None

    # -- AS3 ------------------------------------------------------------------------------
    def as3_tenant(self, tenant: str) -> dict | None:
        """The tenant as last declared, or None."""
        resp = self.raw("GET", f"/shared/appsvcs/declare/{tenant}", accept=(204, 404))
        if resp.status_code == 404 and "not registered" in message_of(resp):
            raise ConfigError(f"{self.name}: AS3 is not installed on {self.access.url} ({message_of(resp)})")
        if resp.status_code == 404:  # some AS3 versions: "specified tenant(s) not found"
            return None
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json().get(tenant)

    def as3_declare(self, decl: dict, timeout: float, poll: float = 1.0) -> list[dict]:
        """POST the declaration; follow a 202 to its task.  Returns the per-tenant results.

        :raises ApplyError: AS3 refused it (422) or a tenant failed (207/422).
        """
        resp = self.raw("POST", "/shared/appsvcs/declare", body=decl, timeout=timeout, idempotent=True,
                        accept=(207, 422, 404))
        deadline = time.monotonic() + timeout
        body = _json(resp) or {}
        if resp.status_code == 404:
            raise ConfigError(f"{self.name}: AS3 is not installed on {self.access.url} ({message_of(resp)})")
        while resp.status_code == 202 or _in_progress(body):
            if time.monotonic() > deadline:
                raise Temporary(f"{self.name}: AS3 task {body.get('id')} still running after {timeout:g}s")
            self.sleep(poll)
            task = body.get("id") or body.get("selfLink", "").rsplit("/", 1)[-1]
            resp = self.raw("GET", f"/shared/appsvcs/task/{task}")
            body = resp.json()
        results = body.get("results") or [body]
        failed = [r for r in results if r.get("code") not in (200, None)]
        if resp.status_code == 422 and "errors" in body:
            raise ApplyError(f"{self.name}: AS3 declaration is invalid: {'; '.join(map(str, body['errors']))}")
        if failed or resp.status_code in (207, 422):
            raise ApplyError(f"{self.name}: AS3 " + "; ".join(as3_result(r) for r in failed or results)
                             + "; AS3 rolled back the tenants that failed")
        return results

    def as3_remove(self, tenant: str, timeout: float) -> None:
        self.raw("DELETE", f"/shared/appsvcs/declare/{tenant}", timeout=timeout, idempotent=True)


def as3_result(r: dict) -> str:
    detail = r.get("response") or "; ".join(map(str, r.get("errors") or []))
    where = f"tenant {r['tenant']}: " if r.get("tenant") else ""
    return f"{where}{r.get('message', 'failed')}" + (f": {detail}" if detail else "")


def failed_op(exc: Rejected, ops: list[Op]) -> str:
    """``pool web: `` when the device says which command failed (``command N``)."""
    stack = exc.body.get("errorStack") if isinstance(exc.body, dict) else None
    for line in stack or []:
        words = str(line).split()
        if len(words) > 1 and words[0] == "command" and words[1].isdigit() and 0 < int(words[1]) <= len(ops):
            return f"{ops[int(words[1]) - 1].label}: "
    return ""


def device_text(exc: Rejected) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc).removeprefix("transaction failed:")


def short(exc: Exception) -> str:
    text = str(exc)
    for marker in ("certificate verify failed", "Connection refused", "timed out", "Read timed out",
                   "Connection reset", "Name or service not known"):
        if marker in text:
            return marker
    return text[:160]


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def in_partition(item: dict, partition: str) -> bool:
    """In the partition itself, not in a folder of it (AS3 keeps its objects in folders)."""
    return item.get("partition", partition) == partition and not item.get("subPath")


def _in_progress(body: dict) -> bool:
    results = body.get("results") or []
    return bool(results) and all(r.get("code") == 0 for r in results)


