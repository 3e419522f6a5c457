"""AS3 (``/mgmt/shared/appsvcs``) declarations, results and tasks (spec §10), pure.

Validation uses F5's own schema with ``jsonschema.Draft7Validator``, compiled
once per process.  Tenants are applied one by one, each inside the LTM undo
journal: a tenant the device rejects is rolled back (422 "declaration failed"),
a tenant whose configuration comes out identical is rolled back too and
reported as "no change" (no generation bump).  Threads (async tasks, the 45 s
switch to async) live in ``device.py``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import lbctl.data

from . import as3_map
from .errors import IcrError

VERSION = {"version": "3.56.0", "release": "10", "schemaCurrent": "3.56.0",
           "schemaMinimum": "3.0.0"}
SCHEMA_ENV = "LBCTL_AS3_SCHEMA"
DEFAULT_SCHEMA = Path(lbctl.data.__file__).parent / "as3-schema.json"  # the copy lbctl ships
_LOCK = threading.Lock()
_HEADER_KEYS = ("class", "schemaVersion", "id", "label", "remark", "updateMode",
                "controls", "$schema", "constants", "target")


def schema_path() -> Path:
    return Path(os.environ.get(SCHEMA_ENV) or DEFAULT_SCHEMA)


@functools.lru_cache(maxsize=4)
def _validator(path: str) -> Any:
    from jsonschema import Draft7Validator
    with open(path, encoding="utf-8") as fh:
        return Draft7Validator(json.load(fh))


def validator() -> Any:
    """The compiled AS3 validator (built once per schema path, thread-safe)."""
    with _LOCK:
        return _validator(str(schema_path()))


def _ajv(err: Any) -> str:
    """A jsonschema error worded the way AS3 (ajv) words it."""
    where = "/" + "/".join(str(p) for p in err.absolute_path)
    v, val = err.validator, err.validator_value
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        text = f"should have required property '{missing}'"
    elif v == "additionalProperties":
        text = "should NOT have additional properties"
    elif v == "enum":
        text = "should be equal to one of the allowed values"
    elif v == "const":
        text = "should be equal to constant"
    elif v == "type":
        text = f"should be {','.join(val) if isinstance(val, list) else val}"
    elif v in ("minimum", "maximum"):
        text = f"should be {'>=' if v == 'minimum' else '<='} {val}"
    elif v == "pattern":
        text = f'should match pattern "{val}"'
    else:
        text = err.message
    return f"{where if where != '/' else ''}: {text}"


def validate(body: Any) -> list[str]:
    from jsonschema.exceptions import best_match
    try:
        check = validator()
    except OSError as exc:
        raise IcrError(500, f"AS3 schema not readable ({exc}); set {SCHEMA_ENV}") from exc
    best = best_match(check.iter_errors(body))
    return [] if best is None else [_ajv(best)]


def tenants_of(decl: dict[str, Any]) -> list[str]:
    return [k for k, v in decl.items() if isinstance(v, dict) and v.get("class") == "Tenant"]


@dataclass
class Task:
    task_id: str
    done: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    response: dict[str, Any] = field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        link = f"https://localhost/mgmt/shared/appsvcs/task/{self.task_id}"
        if not self.done.is_set():
            return {"id": self.task_id, "results": [{
                "message": "in progress", "tenant": "", "host": "", "runTime": 0, "code": 0}],
                "declaration": {}, "selfLink": link}
        results = self.response.get("results") or [self.response]
        return {"id": self.task_id, "results": results,
                "declaration": self.response.get("declaration", {}), "selfLink": link}


class As3:
    def __init__(self, ltm: Any, clock: Callable[[], float],
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.ltm = ltm
        self.clock = clock
        self.on_change = on_change
        self.declaration: dict[str, Any] | None = None
        self.tasks: dict[str, Task] = {}
        self.declares = 0

    # -- declarations -------------------------------------------------------------------
    def current(self, names: list[str] | None = None) -> tuple[int, Any]:
        decl = self.declaration
        if decl is None or not tenants_of(decl):
            return 204, None
        if names:
            keep = [t for t in tenants_of(decl) if t in names]
            if not keep:
                return 204, None
            decl = {k: v for k, v in decl.items() if k not in tenants_of(decl) or k in keep}
        return 200, copy.deepcopy(decl)

    def deploy(self, body: Any, only: list[str] | None = None) -> tuple[int, dict[str, Any]]:
        """POST /declare[/T1,T2]: validate, apply tenant by tenant, merge, answer."""
        self.declares += 1
        dry = False
        if isinstance(body, dict) and body.get("class") == "AS3":
            action = body.get("action", "deploy")
            if action == "retrieve":
                status, decl = self.current()
                return status, decl or {}
            if action == "remove":
                return self.remove(None)
            if action not in ("deploy", "dry-run"):
                raise as3_map.not_emulated(f"AS3 action {action!r}")
            errors = validate(body)
            body, dry = body.get("declaration"), action == "dry-run"
        else:
            errors = validate(body)
        if errors or not isinstance(body, dict):
            decl_id = body.get("id", "") if isinstance(body, dict) else ""
            return 422, {"code": 422, "message": "declaration is invalid",
                         "errors": errors or ["/: should be object"],
                         "declarationFullId": "", "declarationId": decl_id}
        decl = copy.deepcopy(body)
        decl.setdefault("id", f"autogen_{uuid.uuid4()}")
        decl.setdefault("updateMode", "selective")
        decl.setdefault("controls", {}).setdefault("archiveTimestamp", datetime.now(
            timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        dry = dry or bool(decl["controls"].get("dryRun"))
        previous = self.declaration or {}
        targets = [t for t in tenants_of(decl) if only is None or t in only]
        results = [self._apply(t, decl[t], dry) for t in targets]
        if decl["updateMode"] == "complete" and only is None:
            results += [self._remove_tenant(t, dry) for t in tenants_of(previous)
                        if t not in decl]
        if not dry:
            merged = {k: v for k, v in decl.items() if k in _HEADER_KEYS}
            kept = tenants_of(previous) if decl["updateMode"] == "selective" or only else []
            for tenant in dict.fromkeys(kept + targets):
                ok = next((r["code"] == 200 for r in results if r["tenant"] == tenant), None)
                source = decl if ok else previous
                if tenant in source and as3_map.apps_of(source[tenant]) or \
                        tenant == "Common" and tenant in source:
                    merged[tenant] = copy.deepcopy(source[tenant])
            self.declaration = merged
        return self._answer(results, self.declaration or decl)

    def _answer(self, results: list[dict[str, Any]],
                decl: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not results:
            results = [{"code": 200, "message": "no change", "host": "localhost",
                        "tenant": "", "runTime": 0}]
        codes = {r["code"] for r in results}
        status = codes.pop() if len(codes) == 1 else 207
        if any(r["message"] == "success" for r in results):
            self.on_change()
        return status, {"results": results, "declaration": copy.deepcopy(decl)}

    def _apply(self, tenant: str, body: dict[str, Any], dry: bool) -> dict[str, Any]:
        if not as3_map.apps_of(body) and tenant != "Common":
            return self._remove_tenant(tenant, dry)
        return self._change(tenant, dry, lambda: self._rebuild(tenant, body))

    def _rebuild(self, tenant: str, body: dict[str, Any]) -> int:
        as3_map.clear_partition(self.ltm, tenant, keep_partition=True)
        return as3_map.build_tenant(self.ltm, tenant, body)

    def _remove_tenant(self, tenant: str, dry: bool) -> dict[str, Any]:
        def drop() -> int:
            as3_map.clear_partition(self.ltm, tenant, keep_partition=False)
            return 0
        return self._change(tenant, dry, drop)

    def _change(self, tenant: str, dry: bool, work: Callable[[], int]) -> dict[str, Any]:
        start = self.clock()
        before = self.ltm.dump_partition(tenant)
        base = {"host": "localhost", "tenant": tenant}
        try:
            with self.ltm.atomic(dry=dry):
                lines = work()
                if self.ltm.dump_partition(tenant) == before:
                    raise _NoChange
        except _NoChange:
            return {"code": 200, "message": "no change", **base, "runTime": _ms(start, self)}
        except IcrError as err:
            return {"code": 422, "message": "declaration failed", "response": err.message,
                    **base, "runTime": _ms(start, self)}
        result = {"code": 200, "message": "success", "lineCount": lines, **base,
                  "runTime": _ms(start, self)}
        if dry:
            result["dryRun"] = True
        return result

    def remove(self, names: list[str] | None) -> tuple[int, dict[str, Any]]:
        """DELETE /declare[/T1,T2]."""
        decl = self.declaration or {}
        present = tenants_of(decl)
        targets = names if names else present
        results = [self._remove_tenant(t, False) for t in targets]
        remaining = {k: v for k, v in decl.items() if k not in targets}
        self.declaration = remaining if decl else None
        return self._answer(results, remaining)

    def patch(self, ops: Any) -> tuple[int, dict[str, Any]]:
        """PATCH /declare: RFC 6902 add/remove/replace on the current declaration."""
        decl = copy.deepcopy(self.declaration or {"class": "ADC", "schemaVersion": "3.0.0"})
        if not isinstance(ops, list):
            ops = [ops]
        try:
            for op in ops:
                _apply_patch(decl, op)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return 422, {"code": 422, "message": "declaration is invalid",
                         "errors": [f"invalid patch: {exc}"], "declarationFullId": ""}
        decl.pop("controls", None)
        return self.deploy(decl)

    # -- tasks ----------------------------------------------------------------------------
    def new_task(self) -> Task:
        task = Task(str(uuid.uuid4()))
        self.tasks[task.task_id] = task
        return task

    def task(self, task_id: str | None) -> tuple[int, Any]:
        if task_id is None:
            return 200, {"items": [t.render() for t in self.tasks.values()]}
        task = self.tasks.get(task_id)
        if task is None:
            return 404, {"code": 404, "message": f"No record found with ID of {task_id}"}
        return 200, task.render()


class _NoChange(Exception):
    pass


def _ms(start: float, as3: As3) -> int:
    return int((as3.clock() - start) * 1000)


def _apply_patch(doc: dict[str, Any], op: dict[str, Any]) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    if not parts:
        raise ValueError("empty path")
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last, kind = parts[-1], op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(index, op["value"])
        elif kind == "remove":
            del parent[index]
        elif kind == "replace":
            parent[index] = op["value"]
        else:
            raise ValueError(f"unsupported op {kind}")
    elif kind in ("add", "replace"):
        if kind == "replace" and last not in parent:
            raise KeyError(last)
        parent[last] = op["value"]
    elif kind == "remove":
        del parent[last]
    else:
        raise ValueError(f"unsupported op {kind}")
