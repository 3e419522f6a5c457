"""KV store, sessions and locks (docs/upstream.md#consul-election; Consul ``state/kvs.go``, ``session_endpoint.go``).

Index rules: a key reads its own ``ModifyIndex``; a missing key reads the KV table
index; a list (``recurse``/``keys``) reads the highest ``ModifyIndex`` under the prefix,
deletions included (tombstones), else the table index.  Locks are advisory: plain
writes succeed on held keys.  Invalidating a session (destroy, TTL lapse at 2 x TTL,
its node or a bound check going away or critical) releases or deletes its keys and
arms the lock-delay on them; an explicit ``?release`` arms nothing.
"""

from __future__ import annotations

import base64
from typing import Any

from .catalog import ci
from .core import ConsulError
from .durations import parse_duration
from .views import Read, ViewsMixin

MAX_VALUE = 512 * 1024
MAX_LOCK_DELAY = 60.0
SESSION_TTL_MIN, SESSION_TTL_MAX = 10.0, 86400.0


class KVSessionMixin(ViewsMixin):
    def _init_kv(self) -> None:
        self._kv: dict[str, dict] = {}
        self._kv_raw: dict[str, bytes] = {}
        self._tombs: dict[str, int] = {}
        self._lock_delays: dict[str, float] = {}
        self._sessions: dict[str, dict] = {}
        self._session_state: dict[str, dict] = {}  # id -> {"ttl", "deadline", "delay", "keys"}
        self._timer_handlers["session"] = self._session_expired

    # ------------------------------------------------------------ KV reads
    def _kv_table(self) -> int:
        return self.table_index("kvs", "tombstones")

    def _prefix_index(self, prefix: str) -> int:
        best = 0
        for key, rec in self._kv.items():
            if key.startswith(prefix) and rec["ModifyIndex"] > best:
                best = rec["ModifyIndex"]
        for key, idx in self._tombs.items():
            if key.startswith(prefix) and idx > best:
                best = idx
        return best or self._kv_table()

    def read_kv(self, key: str) -> Read:
        def idx() -> int:
            rec = self._kv.get(key)
            return rec["ModifyIndex"] if rec else self._kv_table()
        return idx, lambda: (idx(), self._kv.get(key))

    def kv_raw(self, key: str) -> bytes:
        with self._lock:
            return self._kv_raw.get(key, b"")

    def read_kv_list(self, prefix: str) -> Read:
        idx = lambda: self._prefix_index(prefix)
        return idx, lambda: (idx(), [self._kv[k] for k in sorted(self._kv) if k.startswith(prefix)])

    def read_kv_keys(self, prefix: str, separator: str = "") -> Read:
        idx = lambda: self._prefix_index(prefix)

        def build() -> tuple[int, list[str]]:
            out: dict[str, None] = {}
            for key in sorted(self._kv):
                if not key.startswith(prefix):
                    continue
                rest = key[len(prefix):]
                cut = rest.find(separator) if separator else -1
                out[key if cut < 0 else prefix + rest[:cut + len(separator)]] = None
            return idx(), list(out)
        return idx, build

    # ------------------------------------------------------------ KV writes
    def _kv_write(self, key: str, value: bytes, flags: int, *, session: str | None,
                  lock_index: int | None = None) -> None:
        old = self._kv.get(key)
        idx = self._touch_table("kvs", "kv")
        rec: dict[str, Any] = {
            "LockIndex": lock_index if lock_index is not None else (old["LockIndex"] if old else 0),
            "Key": key, "Flags": flags,
            "Value": base64.b64encode(value).decode() if value else None,
        }
        if session:
            rec["Session"] = session
        rec["CreateIndex"] = old["CreateIndex"] if old else idx
        rec["ModifyIndex"] = idx
        self._kv[key] = rec
        self._kv_raw[key] = value
        self._tombs.pop(key, None)
        if old is not None and old.get("Session") and old.get("Session") != session:
            self._session_keys(old["Session"]).discard(key)
        if session:
            self._session_keys(session).add(key)

    def _session_keys(self, sid: str) -> set[str]:
        state = self._session_state.get(sid)
        return state["keys"] if state else set()

    def _kv_del(self, key: str) -> None:
        old = self._kv.pop(key, None)
        if old is None:
            return
        self._kv_raw.pop(key, None)
        if old.get("Session"):
            self._session_keys(old["Session"]).discard(key)
        self._tombs[key] = self._touch_table("tombstones", "kv")

    def kv_put(self, key: str, value: bytes, *, flags: int = 0, cas: int | None = None,
               acquire: str | None = None, release: str | None = None) -> bool:
        if len(value) > MAX_VALUE:
            raise ConsulError(413, f"Request body({len(value)} bytes) too large, max size: {MAX_VALUE} bytes. "
                                   "See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.")
        with self._txn():
            old = self._kv.get(key)
            if cas is not None:
                if (cas == 0 and old is not None) or (cas != 0 and (old is None or old["ModifyIndex"] != cas)):
                    return False
                self._kv_write(key, value, flags, session=old.get("Session") if old else None)
                return True
            if acquire is not None:
                if acquire not in self._sessions:
                    raise ConsulError(500, f'invalid session "{acquire}"')
                if old is not None and old.get("Session") == acquire:
                    self._kv_write(key, value, flags, session=acquire)
                    return True
                if old is not None and old.get("Session"):
                    return False
                if self._lock_delays.get(key, 0.0) > self.now():
                    return False
                self._lock_delays.pop(key, None)
                self._kv_write(key, value, flags, session=acquire,
                               lock_index=(old["LockIndex"] if old else 0) + 1)
                return True
            if release is not None:
                if old is None or old.get("Session") != release:
                    return False
                self._kv_write(key, value, flags, session=None)
                return True
            self._kv_write(key, value, flags, session=old.get("Session") if old else None)
            return True

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        with self._txn():
            if cas is not None:
                old = self._kv.get(key)
                if old is None or old["ModifyIndex"] != cas:
                    return old is None
                self._kv_del(key)
                return True
            if recurse:
                for k in [k for k in self._kv if k.startswith(key)]:
                    self._kv_del(k)
            else:
                self._kv_del(key)
            return True

    # ------------------------------------------------------------ sessions
    def session_create(self, body: dict | None) -> str:
        b = ci(body or {})
        node = b.get("node") or self.node_name
        checks = ["serfHealth"]
        if "checks" in b or "nodechecks" in b:
            checks = [str(c) for c in (b.get("checks") or []) + (b.get("nodechecks") or [])]
        delay = 15.0
        if "lockdelay" in b:
            delay = _lock_delay(b["lockdelay"])
        behavior = b.get("behavior") or "release"
        if behavior not in ("release", "delete"):
            raise ConsulError(500, f"Invalid Behavior setting '{behavior}'")
        ttl_text = str(b.get("ttl") or "")
        ttl = 0.0
        if ttl_text:
            try:
                ttl = parse_duration(ttl_text)
            except ValueError:
                raise ConsulError(500, f"Session TTL '{ttl_text}' invalid") from None
            if ttl != 0 and not SESSION_TTL_MIN <= ttl <= SESSION_TTL_MAX:
                raise ConsulError(500, f"Invalid Session TTL '{int(ttl * 1e9)}', must be between [10s=24h0m0s]")
        with self._txn():
            if node not in self._nodes:
                raise ConsulError(500, "Missing node registration")
            for cid in checks:
                chk = self._checks[node].get(cid)
                if chk is None:
                    raise ConsulError(500, f"Missing check '{cid}' registration")
                if chk["Status"] == "critical":
                    raise ConsulError(500, f"Check '{cid}' is in critical state")
            sid = self.new_uuid()
            idx = self._touch_table("sessions")
            self._sessions[sid] = {
                "ID": sid, "Name": str(b.get("name") or ""), "Node": node,
                "LockDelay": int(min(delay, MAX_LOCK_DELAY) * 1e9), "Behavior": behavior,
                "TTL": ttl_text if ttl else "", "Checks": list(checks), "NodeChecks": list(checks),
                "ServiceChecks": None, "CreateIndex": idx, "ModifyIndex": idx,
            }
            state = {"ttl": ttl, "deadline": None, "delay": min(delay, MAX_LOCK_DELAY), "keys": set()}
            self._session_state[sid] = state
            if ttl:
                self._arm_session(sid)
            return sid

    def _arm_session(self, sid: str) -> None:
        state = self._session_state[sid]
        state["deadline"] = self.now() + 2 * state["ttl"]
        self._schedule(state["deadline"], "session", sid)

    def session_renew(self, sid: str) -> list[dict]:
        with self._lock:
            if sid not in self._sessions:
                raise ConsulError(404, f"Session id '{sid}' not found")
            if self._session_state[sid]["ttl"]:
                self._arm_session(sid)
            return [self._sessions[sid]]

    def session_destroy(self, sid: str) -> None:
        with self._txn():
            self._invalidate(sid)

    def _invalidate(self, sid: str) -> None:
        sess = self._sessions.pop(sid, None)
        state = self._session_state.pop(sid, None)
        if sess is None or state is None:
            return
        self._touch_table("sessions")
        now = self.now()
        for key in sorted(state["keys"]):
            rec = self._kv.get(key)
            if rec is None or rec.get("Session") != sid:
                continue
            if state["delay"] > 0:
                self._lock_delays[key] = now + state["delay"]
            if sess["Behavior"] == "delete":
                self._kv_del(key)
            else:
                self._kv_write(key, self._kv_raw.get(key, b""), rec["Flags"], session=None)

    def _session_expired(self, sid: str, deadline: float) -> None:
        state = self._session_state.get(sid)
        if state is None or state["deadline"] != deadline:
            return
        with self._txn():
            self._invalidate(sid)

    def _timer_live(self, kind: str, ident: Any, deadline: float) -> bool:
        if kind == "session":
            state = self._session_state.get(ident)
            return state is not None and state["deadline"] == deadline
        return super()._timer_live(kind, ident, deadline)

    def _on_check_critical(self, node: str, cid: str) -> None:
        for sid, sess in list(self._sessions.items()):
            if sess["Node"] == node and cid in sess["NodeChecks"]:
                self._invalidate(sid)

    def _on_check_removed(self, node: str, cid: str) -> None:
        super()._on_check_removed(node, cid)
        self._on_check_critical(node, cid)

    def _on_node_removed(self, node: str) -> None:
        for sid, sess in list(self._sessions.items()):
            if sess["Node"] == node:
                self._invalidate(sid)

    def read_session(self, sid: str) -> Read:
        idx = lambda: self.table_index("sessions")
        return idx, lambda: (idx(), [self._sessions[sid]] if sid in self._sessions else [])

    def read_sessions(self, node: str | None = None) -> Read:
        idx = lambda: self.table_index("sessions")
        return idx, lambda: (idx(), [s for _, s in sorted(self._sessions.items())
                                     if node is None or s["Node"] == node])

    # ------------------------------------------------------------ reset support
    def _lower_indexes(self, to: int) -> None:
        super()._lower_indexes(to)
        low = lambda r: {**r, "CreateIndex": min(r["CreateIndex"], to), "ModifyIndex": min(r["ModifyIndex"], to)}
        self._kv = {k: low(v) for k, v in self._kv.items()}
        self._sessions = {k: low(v) for k, v in self._sessions.items()}
        self._tombs = {k: min(v, to) for k, v in self._tombs.items()}


def _lock_delay(raw: Any) -> float:
    """``FixupLockDelay``: strings are Go durations, numbers nanoseconds; below 1000 means seconds."""
    try:
        if isinstance(raw, str):
            secs = parse_duration(raw)
            return secs * 1e9 if secs * 1e9 < 1000 else secs  # "5ns" -> 5 s, as Consul does
        ns = float(raw)
    except (TypeError, ValueError):
        raise ConsulError(400, f"Request decode failed: invalid lock delay {raw!r}") from None
    return ns if ns < 1000 else ns / 1e9

