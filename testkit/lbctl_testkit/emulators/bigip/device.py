"""One emulated BIG-IP: routes a decoded request to auth, sys, cm, transactions,
LTM and AS3, under one device lock (mcpd applies one change at a time).

No sockets here: ``Device.handle`` takes (method, raw path, headers, body bytes)
and returns (status, JSON-able body or None).  Only AS3 uses threads (async
tasks and the 45 s switch of a synchronous POST to a task).
"""

from __future__ import annotations

import json
import re
import threading
import traceback
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from . import as3 as as3_mod
from . import cluster
from .as3 import As3
from .auth import Auth
from .errors import API_REST, IcrError, invalid_json, uri_not_registered
from .ltm import Ltm
from .transactions import Command, Transactions

Result = tuple[int, Any]
_BUILD = "0.0.31"
COORDINATION = "X-F5-REST-Coordination-Id"


class Device:
    def __init__(self, users: dict[str, str], *, version: str = "15.1.0",
                 clock: Callable[[], float], token_timeout: int = 1200,
                 transaction_timeout: int = 120, device_groups: tuple[str, ...] = (),
                 hostname: str = "bigip1.example.com") -> None:
        self.lock = threading.RLock()
        self.version = version
        self.hostname = hostname
        self.ltm = Ltm(version)
        self.auth = Auth(users, clock, token_timeout)
        self.txns = Transactions(clock, version, transaction_timeout)
        self.as3 = As3(self.ltm, clock, on_change=self._save)
        self.as3_installed = True
        self.as3_delay = 0.0
        self.as3_wake = threading.Event()   # set: waiting AS3 tasks stop waiting
        self.as3_sync_timeout = 45.0
        self._as3_busy = False
        self.device_groups = list(device_groups)
        self.saves: list[int] = []          # generation at each save
        self.saved_generation = self.ltm.generation
        self.syncs: list[str] = []          # device groups synced to, in order
        self.synced_generation = self.ltm.generation
        self.group: Any = None               # a cluster.DeviceGroup with peers (BigIPEmulator.pair)
        self.failover = "ACTIVE"             # cm/failover-status: ACTIVE or STANDBY
        self.internal_errors: list[str] = []
        self.stopping = threading.Event()

    # -- entry point ----------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Any, raw_body: bytes,
               sender: str = "127.0.0.1") -> Result:
        split = urlsplit(raw_path)
        path = unquote(split.path)
        params = parse_qsl(split.query, keep_blank_values=True)
        try:
            if not path.startswith("/mgmt/"):
                raise uri_not_registered(path)
            sub = "/" + path[len("/mgmt/"):].strip("/")
            body = self._body(method, raw_body)
            if sub == "/shared/authn/login" and method == "POST":
                with self.lock:
                    return 200, self.auth.login(body)
            with self.lock:
                self.auth.authenticate(headers, f"http://localhost:8100{path}", sender)
            return self._route(method, sub, params, headers, body, split.path.endswith("/"))
        except IcrError as err:
            return err.status, err.body(sender)
        except Exception:  # noqa: BLE001 - a bug in the emulator must not kill the socket
            self.internal_errors.append(traceback.format_exc())
            return 500, {"code": 500, "message": "emulator internal error (see "
                         "BigIPEmulator.internal_errors)", "errorStack": [], "apiError": 1}

    @staticmethod
    def _body(method: str, raw: bytes) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            if method in ("POST", "PUT", "PATCH"):
                raise invalid_json() from None
            return None

    def _route(self, method: str, sub: str, params: list[tuple[str, str]], headers: Any,
               body: Any, trailing: bool) -> Result:
        if sub.startswith("/shared/appsvcs"):
            return self._as3(method, sub, params, body)
        with self.lock:
            if sub.startswith("/shared/authz/tokens/"):
                return self.auth.token_resource(method, sub.rsplit("/", 1)[1], body)
            if sub == "/shared/identified-devices/config/device-info" and method == "GET":
                return 200, self._device_info()
            if not sub.startswith("/tm/"):
                raise uri_not_registered(sub)
            tid = headers.get(COORDINATION)
            on_commands = sub.startswith("/tm/transaction/") and "/commands" in sub
            if tid and method != "GET" and not on_commands:
                return self._queue(tid, method, sub, params, body)
            if sub.startswith("/tm/transaction") and sub[15:16] in ("", "/"):
                rest = sub[16:] + ("/" if trailing else "")
                return self.txns.handle(method, rest, body, self._execute,
                                        lambda dry: self.ltm.atomic(dry=dry))
            return self._tm(method, sub, params, body)

    def _tm(self, method: str, sub: str, params: list[tuple[str, str]], body: Any) -> Result:
        parts = sub.split("/")[2:]
        if parts == ["sys"] and method == "GET":
            return 200, self._sys_collection()
        if parts == ["sys", "version"] and method == "GET":
            return 200, self._sys_version()
        if parts == ["sys", "config"] and method == "POST":
            return self._sys_config(body)
        if parts[:1] == ["cm"]:
            return self._cm(method, parts, body)
        if parts == ["ltm"] and method == "GET":
            return 200, {"kind": "tm:ltm:ltmcollectionstate",
                         "selfLink": f"https://localhost/mgmt/tm/ltm?ver={self.version}",
                         "items": [{"reference": {"link": f"https://localhost/mgmt/tm/ltm/"
                                                          f"{t}?ver={self.version}"}}
                                   for t in ("monitor", "node", "pool", "virtual",
                                             "virtual-address")]}
        return self.ltm.handle(method, parts, params, body)

    # -- transactions -----------------------------------------------------------------------
    def _queue(self, tid: str, method: str, sub: str, params: list[tuple[str, str]],
               body: Any) -> Result:
        parts = sub.split("/")[2:]
        if parts[:1] != ["transaction"]:
            if parts[:1] in (["sys"], ["cm"]) and parts[:2] != ["sys", "folder"]:
                # [unverified] text
                raise IcrError(400, f"The requested command ({method} /mgmt{sub}) cannot be "
                                    f"part of a transaction.", API_REST)
            self.ltm.check_shape(method, parts, body)
        return 200, self.txns.queue(tid, method, "tm/" + "/".join(parts), params, body)

    def _execute(self, cmd: Command) -> None:
        parts = cmd.path.split("/")[1:]
        if parts[:1] == ["transaction"]:
            # [unverified] text: what a queued commit PATCH turns into (docs/upstream.md#big-ip-transactions)
            raise IcrError(400, "A transaction cannot contain a command on "
                                f"/mgmt/{cmd.path}.", API_REST)
        self.ltm.handle(cmd.method, parts, cmd.params, cmd.body)

    # -- sys and cm ---------------------------------------------------------------------------
    def _sys_collection(self) -> dict[str, Any]:
        return {"kind": "tm:sys:syscollectionstate",
                "selfLink": f"https://localhost/mgmt/tm/sys?ver={self.version}",
                "items": [{"reference": {"link": f"https://localhost/mgmt/tm/sys/{t}?ver="
                                                 f"{self.version}"}}
                          for t in ("config", "folder", "version")]}

    def _sys_version(self) -> dict[str, Any]:
        entries = {"Build": _BUILD, "Date": "Wed Nov 27 19:33:00 PST 2019",
                   "Edition": "Final", "Product": "BIG-IP", "Title": "Main Package",
                   "Version": self.version}
        return {"kind": "tm:sys:version:versionstats",
                "selfLink": f"https://localhost/mgmt/tm/sys/version?ver={self.version}",
                "entries": {"https://localhost/mgmt/tm/sys/version/0": {"nestedStats": {
                    "entries": {k: {"description": v} for k, v in entries.items()}}}}}

    def _device_info(self) -> dict[str, Any]:
        return {"baseMac": "00:0c:29:5e:00:01", "hostname": self.hostname,
                "machineId": "7c3d4f4e-1f6b-4b7b-9f43-3e6f0a1c0001", "address": "127.0.0.1",
                "build": _BUILD, "product": "BIG-IP", "platformMarketingName":
                "BIG-IP Virtual Edition", "version": self.version, "edition": "Final",
                "restFrameworkVersion": f"{self.version}-{_BUILD}",
                "managementAddress": "127.0.0.1", "mcpDeviceName": f"/Common/{self.hostname}",
                "isClustered": bool(self.device_groups), "isVirtual": True,
                "hypervisorType": "vmware", "generation": 0, "lastUpdateMicros": 0,
                "kind": "shared:resolver:device-groups:deviceinfostate",
                "selfLink": "https://localhost/mgmt/shared/identified-devices/config/"
                            "device-info"}

    def _save(self) -> None:
        self.saves.append(self.ltm.generation)
        self.saved_generation = self.ltm.generation

    def _sys_config(self, body: Any) -> Result:
        command = body.get("command") if isinstance(body, dict) else None
        if command != "save":
            # [unverified] text; "load" is not emulated
            raise IcrError(400, f'invalid property value "command":{json.dumps(command)}',
                           26214401)
        self._save()
        return 200, {"kind": "tm:sys:config:savestate", "command": "save"}

    def _cm(self, method: str, parts: list[str], body: Any) -> Result:
        if parts == ["cm", "sync-status"] and method == "GET":
            return 200, self._sync_status()
        if parts == ["cm", "failover-status"] and method == "GET":
            return 200, cluster.failover_status(self)
        if parts == ["cm", "device-group"] and method == "GET":
            return 200, self._device_groups()
        if method != "POST" or not isinstance(body, dict) or body.get("command") != "run":
            raise uri_not_registered("/tm/" + "/".join(parts))
        if parts == ["cm"]:
            m = re.fullmatch(r"\s*config-sync\s+to-group\s+(\S+)\s*",
                             str(body.get("utilCmdArgs", "")))
            if not m:
                raise IcrError(400, f'invalid property value "utilCmdArgs":'
                                    f'{json.dumps(body.get("utilCmdArgs"))}', 26214401)
            group, kind = m.group(1), "tm:cm:runstate"
        elif parts == ["cm", "config-sync"]:
            options = body.get("options") or [{}]
            group = options[0].get("to-group") if isinstance(options[0], dict) else None
            kind = "tm:cm:config-sync:runstate"
        else:
            raise uri_not_registered("/tm/" + "/".join(parts))
        if group not in self.device_groups:
            raise IcrError(400, f"01070734:3: Configuration error: Device group ({group}) not "
                                f"found in device group sync")
        self.syncs.append(group)
        if self.group is not None and self.group.name == group:
            self.group.sync_from(self)
        else:
            self.synced_generation = self.ltm.generation
        return 200, {"kind": kind, **{k: v for k, v in body.items()
                                      if k in ("command", "utilCmdArgs", "options")}}

    def _sync_status(self) -> dict[str, Any]:
        summary = " "
        if self.group is not None:
            (status, color, summary), mode = self.group.status(), "high-availability"
        elif not self.device_groups:
            status, color, mode = "Standalone", "green", "standalone"
        elif self.synced_generation == self.ltm.generation:
            status, color, mode = "In Sync", "green", "high-availability"
        else:
            status, color, mode = "Changes Pending", "yellow", "high-availability"
        return {"kind": "tm:cm:sync-status:sync-statusstats",
                "selfLink": f"https://localhost/mgmt/tm/cm/sync-status?ver={self.version}",
                "entries": {"https://localhost/mgmt/tm/cm/sync-status/0": {"nestedStats": {
                    "entries": {"color": {"description": color},
                                "mode": {"description": mode},
                                "status": {"description": status},
                                "summary": {"description": summary}}}}}}

    def _device_groups(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "tm:cm:device-group:device-groupcollectionstate",
                               "selfLink": "https://localhost/mgmt/tm/cm/device-group?ver="
                                           f"{self.version}"}
        if self.device_groups:
            out["items"] = [{"kind": "tm:cm:device-group:device-groupstate", "name": g,
                             "partition": "Common", "fullPath": f"/Common/{g}",
                             "generation": 1, "type": "sync-failover",
                             "autoSync": "disabled",
                             "selfLink": f"https://localhost/mgmt/tm/cm/device-group/"
                                         f"~Common~{g}?ver={self.version}"}
                            for g in self.device_groups]
        return out

    # -- AS3 ------------------------------------------------------------------------------------
    def _as3(self, method: str, sub: str, params: list[tuple[str, str]], body: Any) -> Result:
        if not self.as3_installed:
            raise uri_not_registered(sub)
        parts = sub.split("/")[3:]
        tenants = parts[1].split(",") if len(parts) > 1 and parts[1] else None
        if parts == ["info"] and method == "GET":
            return 200, dict(as3_mod.VERSION)
        if parts[:1] == ["task"] and method == "GET":
            with self.lock:
                return self.as3.task(parts[1] if len(parts) > 1 else None)
        if parts[:1] != ["declare"] or len(parts) > 2:
            raise uri_not_registered(sub)
        if method == "GET":
            with self.lock:
                return self.as3.current(tenants)
        if method == "DELETE":
            with self.lock:
                return self.as3.remove(tenants)
        if method in ("POST", "PATCH"):
            is_async = any(k == "async" and v.lower() == "true" for k, v in params)
            return self._as3_submit(method, body, tenants, is_async)
        raise uri_not_registered(sub)

    def _as3_submit(self, method: str, body: Any, tenants: list[str] | None,
                    is_async: bool) -> Result:
        with self.lock:
            if self._as3_busy:
                return 503, {"code": 503, "message": "Error: Configuration operation in "
                             "progress on device localhost, please try again in 2 minutes"}
            self._as3_busy = True
            task = self.as3.new_task()

        def work() -> None:
            status, response = 500, {}
            try:
                if self.as3_delay and not self.stopping.is_set():
                    self.as3_wake.wait(self.as3_delay)
                with self.lock:
                    status, response = (self.as3.patch(body) if method == "PATCH"
                                        else self.as3.deploy(body, tenants))
            except IcrError as err:
                status, response = err.status, {"code": err.status, "message": err.message}
            except Exception:  # noqa: BLE001
                self.internal_errors.append(traceback.format_exc())
                status, response = 500, {"code": 500, "message": "emulator internal error"}
            finally:
                task.status, task.response = status, response
                with self.lock:
                    self._as3_busy = False
                task.done.set()

        threading.Thread(target=work, name=f"as3-task-{task.task_id}", daemon=True).start()
        if not is_async and task.done.wait(self.as3_sync_timeout):
            return task.status, task.response
        return 202, {"id": task.task_id, "results": [{
            "message": "Declaration successfully submitted", "tenant": "", "host": "",
            "runTime": 0, "code": 0}], "declaration": {},
            "selfLink": f"https://localhost/mgmt/shared/appsvcs/task/{task.task_id}"}
