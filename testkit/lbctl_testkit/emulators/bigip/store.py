"""The journaled object store under the LTM model, plus partitions and folders.

Everything is plain dicts keyed by full path.  Every change goes through
``put``/``put_member``, which record the old value while a journal is open, so
``atomic()`` can undo a failed request, transaction or AS3 tenant in
O(changes).  Keys starting with ``_`` are internal and never rendered.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from . import names
from .errors import IcrError, bad_value, folder_missing, not_found, unknown_property

READONLY = frozenset({"kind", "selfLink", "generation", "fullPath", "membersReference",
                      "profilesReference", "poolReference", "vsIndex", "ephemeral",
                      "creationTime", "lastModifiedTime", "policiesReference",
                      "nameReference", "defaultsFromReference", "monitorReference"})
IDENTITY = frozenset({"name", "partition", "subPath"})
ENABLED = frozenset({"enabled", "disabled"})
YESNO = frozenset({"yes", "no"})


@dataclass(frozen=True)
class Spec:
    """What a device accepts for one object type (drives PATCH/PUT/POST checks)."""

    label: str                       # as mcpd names it in messages: "Pool"
    kind: str
    defaults: Mapping[str, Any]      # writable keys always present
    enums: Mapping[str, frozenset] = field(default_factory=dict)
    ints: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    optional: frozenset = frozenset()   # writable keys absent when unset
    special: frozenset = frozenset()    # writable keys the type's code handles
    create_only: frozenset = IDENTITY


def check_fields(spec: Spec, body: Mapping[str, Any]) -> dict[str, Any]:
    """Shape check (no existence checks): enums, integer ranges, unknown keys."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in READONLY:
            continue
        if key in spec.enums:
            if value not in spec.enums[key]:
                raise bad_value(key, value)
        elif key in spec.ints:
            value = _int(key, value, *spec.ints[key])
        elif key in ("description",) and value is not None and not isinstance(value, str):
            raise bad_value(key, value)
        elif not (key in spec.defaults or key in spec.optional or key in spec.special
                  or key in spec.create_only):
            raise unknown_property(key)
        out[key] = value
    return out


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_value(key, value)
    return value


def public(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class Store:
    """Tables of objects, a device-wide generation counter and an undo journal."""

    TABLES = ("folder", "pool", "node", "monitor", "virtual", "vaddr")

    def __init__(self, version: str) -> None:
        self.version = version
        self.generation = 1
        self.tables: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.TABLES}
        self.members: dict[str, dict[str, dict[str, Any]]] = {}
        self.node_refs: dict[str, dict[str, int]] = {}
        self.node_addrs: dict[str, str] = {}   # address (with %rd) -> node full path
        self._journal: list[tuple] | None = None
        self.add_folder("/Common", description="Repository for system objects and shared "
                                               "objects.", _builtin=True)

    # -- journal ---------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic(self, dry: bool = False) -> Iterator[None]:
        """All-or-nothing: undo every change on error (or always, if ``dry``)."""
        outer = self._journal is None
        if outer:
            self._journal = []
        mark, generation = len(self._journal), self.generation
        try:
            yield
            if dry:
                self._undo(mark)
                self.generation = generation
        except BaseException:
            self._undo(mark)
            self.generation = generation
            raise
        finally:
            if outer:
                self._journal = None

    def _undo(self, mark: int) -> None:
        journal = self._journal
        assert journal is not None
        while len(journal) > mark:
            entry = journal.pop()
            if entry[0] == "member":
                self._set_member(entry[1], entry[2], entry[3])
            else:
                self._set(entry[0], entry[1], entry[2])

    def bump(self) -> int:
        self.generation += 1
        return self.generation

    def put(self, table: str, key: str, obj: dict[str, Any] | None) -> None:
        if self._journal is not None:
            self._journal.append((table, key, self.tables[table].get(key)))
        self._set(table, key, obj)

    def _set(self, table: str, key: str, obj: dict[str, Any] | None) -> None:
        old = self.tables[table].pop(key, None)
        if obj is not None:
            self.tables[table][key] = obj
        if table == "node":
            if old is not None and old.get("address"):
                self.node_addrs.pop(old["address"], None)
            if obj is not None and obj.get("address"):
                self.node_addrs[obj["address"]] = key

    def put_member(self, pool: str, key: str, obj: dict[str, Any] | None) -> None:
        if self._journal is not None:
            self._journal.append(("member", pool, key, self.members.get(pool, {}).get(key)))
        self._set_member(pool, key, obj)

    def _set_member(self, pool: str, key: str, obj: dict[str, Any] | None) -> None:
        members = self.members.setdefault(pool, {})
        old = members.pop(key, None)
        if old is not None:
            self._ref(old["_node"], pool, -1)
        if obj is not None:
            members[key] = obj
            self._ref(obj["_node"], pool, +1)
        if not members:
            del self.members[pool]

    def _ref(self, node: str, pool: str, delta: int) -> None:
        refs = self.node_refs.setdefault(node, {})
        refs[pool] = refs.get(pool, 0) + delta
        if refs[pool] <= 0:
            del refs[pool]
        if not refs:
            del self.node_refs[node]

    # -- lookups ---------------------------------------------------------------------
    def get(self, table: str, path: str, label: str) -> dict[str, Any]:
        obj = self.tables[table].get(path)
        if obj is None:
            raise not_found(label, path)
        return obj

    def items(self, table: str, partition: str | None = None) -> list[dict[str, Any]]:
        objs = self.tables[table].values()
        if partition is not None:
            objs = [o for o in objs if o.get("partition") == partition]
        return sorted(objs, key=lambda o: o["fullPath"])

    def pool_members(self, pool: str) -> list[dict[str, Any]]:
        return sorted(self.members.get(pool, {}).values(), key=lambda o: o["fullPath"])

    # -- folders and partitions -------------------------------------------------------
    def add_folder(self, full_path: str, **fields: Any) -> dict[str, Any]:
        parent = names.folder_of(full_path)
        if parent and parent not in self.tables["folder"]:
            raise folder_missing(parent)
        if full_path in self.tables["folder"]:
            label = "folder" if parent else "partition"
            raise IcrError(409, f"01020066:3: The requested {label} ({full_path}) already "
                                f"exists in partition {full_path.strip('/').split('/')[0]}.")
        name = full_path.rsplit("/", 1)[1]
        names.check_name(name)
        obj = {"name": name, "fullPath": full_path, "subPath": parent or "/",
               "generation": self.bump(), **fields}
        if not parent:
            obj.setdefault("defaultRouteDomain", 0)
        self.put("folder", full_path, obj)
        return obj

    def need_folder(self, partition: str | None, sub_path: str | None = None) -> str:
        if not isinstance(partition, str) or not partition:
            partition = "Common"
        folder = names.join_path(partition, sub_path, "")
        if folder not in self.tables["folder"]:
            raise folder_missing(folder)
        return partition

    def folder_in_use(self, folder: str) -> bool:
        prefix = folder + "/"
        for table in ("pool", "node", "monitor", "virtual", "folder"):
            if any(k.startswith(prefix) for k in self.tables[table]):
                return True
        return any(k.startswith(prefix) for ms in self.members.values() for k in ms)

    def delete_folder(self, full_path: str) -> None:
        obj = self.tables["folder"].get(full_path)
        if obj is None:
            raise not_found("folder" if full_path.count("/") > 1 else "partition", full_path)
        if obj.get("_builtin"):
            # [unverified] text
            raise IcrError(400, f"01070829:3: Folder {full_path} is a system folder and "
                                f"cannot be deleted.")
        if self.folder_in_use(full_path):
            # [unverified] text
            raise IcrError(400, f"01070829:3: Folder {full_path} is not empty and cannot "
                                f"be deleted.")
        self.bump()
        self.put("folder", full_path, None)

    # -- dumps (AS3 change detection, tests) -------------------------------------------
    def dump_partition(self, partition: str) -> dict[str, Any]:
        """Everything under ``/partition`` (no generations): equal dumps, equal config."""
        prefix = f"/{partition}/"

        def clean(obj: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in obj.items() if k not in ("generation", "vsIndex")}

        out: dict[str, Any] = {}
        for table in self.TABLES:
            for key, obj in self.tables[table].items():
                if key.startswith(prefix) or key == f"/{partition}":
                    out[f"{table}:{key}"] = clean(obj)
        for pool, members in self.members.items():
            for key, obj in members.items():
                if pool.startswith(prefix) or key.startswith(prefix):
                    out[f"member:{pool}:{key}"] = clean(obj)
        return out
