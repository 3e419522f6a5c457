"""Leader election through a Consul session and a KV lock (docs/upstream.md#consul-election,
after Consul's ``api/lock.go``), so that only one ``lbctl watch`` writes to shared targets.

The session is bound to the TTL check of a service this process registers for
itself (``lbctl``, ID ``lbctl-<name>``; a node-level check would take every
service on the node down with a dead controller), and has the same TTL itself: Consul invalidates a session at up to twice its TTL, but a
bound check goes critical exactly one TTL after the last pass, so a dead leader
loses the lock after one TTL (plus the lock-delay).  Leader and followers pass
the check and renew the session every TTL/2; the leader steps down as soon as a
renewal fails or the key names another session.  Before
every write the leader fences: it reads the key (consistent) and checks that its
session still holds it.  On SIGTERM it releases the key before destroying the
session (an explicit release arms no lock-delay, so a follower takes over at once).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import consul
import requests

from lbctl.errors import LbctlError

log = logging.getLogger("lbctl.election")


class NotLeader(LbctlError):
    """This process no longer holds the leader lock: it must not write."""


class Election(threading.Thread):
    def __init__(self, api: consul.Consul, key: str, name: str, ttl: int, lock_delay: int,
                 on_change: Callable[[bool], None], retry: float = 1.0) -> None:
        super().__init__(name="election", daemon=True)
        self.api, self.key, self.me = api, key, name
        self.ttl, self.lock_delay, self.retry = ttl, lock_delay, retry
        self.on_change = on_change
        self.sid: str | None = None
        self.service_id = f"lbctl-{name}"
        self.check_id = f"service:{self.service_id}"
        self.leading = False
        self.lock_index: int | None = None
        self.stopped = threading.Event()

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> None:
        index, renewed, free = 0, 0.0, False
        while not self.stopped.is_set():
            try:
                if self.sid is None:
                    # A controller of the same name restarted after a crash: deregistering its
                    # service invalidates the old session at once (else it lives 2 x TTL).
                    self.api.agent.service.deregister(self.service_id)
                    self.api.agent.service.register("lbctl", service_id=self.service_id, tags=["lbctl-controller"],
                                                    check=consul.Check.ttl(f"{self.ttl}s"))
                    self.api.agent.check.ttl_pass(self.check_id)
                    self.sid = self.api.session.create(name=f"lbctl {self.me}", ttl=self.ttl, lock_delay=self.lock_delay,
                                                       behavior="release", checks=[self.check_id])
                    renewed = time.monotonic()
                if time.monotonic() - renewed >= self.ttl / 2:  # leader and followers alike
                    self.api.agent.check.ttl_pass(self.check_id)
                    self.api.session.renew(self.sid)
                    renewed = time.monotonic()
                if self.leading:
                    if not self.holds():
                        self.step_down("another session holds the lock")
                    self.stopped.wait(max(0.0, renewed + self.ttl / 2 - time.monotonic()))
                    continue
                if self.api.kv.put(self.key, self.me, acquire=self.sid):
                    self.confirm()
                    continue
                # Block until the key changes, but wake in time to renew the session.  A free key
                # that refused us (a lock-delay runs) does not change when the delay ends: read it
                # again at once, without an index, so we retry every ``retry`` seconds.
                index, data = self.api.kv.get(self.key, index=None if free else (index or None),
                                              wait=f"{max(1, self.ttl // 2 - 1)}s")
                index = int(index or 0)
                free = data is None or not data.get("Session")
                if free:
                    self.stopped.wait(self.retry)
            except consul.NotFound:
                self.lost_session("the session expired")
            except consul.ConsulException as exc:
                if "session" in str(exc).lower():  # 500 "invalid session": it expired under us
                    self.lost_session("the session is gone")
                else:
                    self.trouble(exc)
            except (requests.RequestException, OSError) as exc:
                self.trouble(exc)

    def lost_session(self, why: str) -> None:
        self.step_down(why)
        self.sid = None

    def trouble(self, exc: BaseException) -> None:
        if self.leading:
            self.step_down(f"Consul does not answer ({type(exc).__name__})")
        self.stopped.wait(self.retry)

    def confirm(self) -> None:
        if self.holds():
            self.leading = True
            log.info("%s is the leader (lock index %s)", self.me, self.lock_index)
            self.on_change(True)

    def step_down(self, why: str) -> None:
        if self.leading:
            self.leading = False
            log.warning("%s is no longer the leader: %s; it stops writing to shared targets", self.me, why)
            self.on_change(False)

    # -- fencing and the end ----------------------------------------------------------

    def holds(self) -> bool:
        """Whether our session holds the key right now (a consistent read)."""
        if self.sid is None:
            return False
        _, data = self.api.kv.get(self.key, consistency="consistent")
        ok = bool(data) and data.get("Session") == self.sid
        if ok:
            self.lock_index = data.get("LockIndex")
        return ok

    def fence(self) -> None:
        """:raises NotLeader: called before every write to a shared target."""
        try:
            ok = self.leading and self.holds()
        except (consul.ConsulException, requests.RequestException, OSError) as exc:
            self.step_down(f"the fencing read failed ({type(exc).__name__})")
            raise NotLeader(f"{self.me}: cannot confirm the leader lock {self.key}: {type(exc).__name__}") from None
        if not ok:
            self.step_down("the fencing read shows another holder")
            raise NotLeader(f"{self.me}: lost the leader lock {self.key}; not writing")

    def stop(self) -> None:
        """Release the key, then destroy the session (best effort, bounded by the client timeout)."""
        self.stopped.set()
        sid, self.sid = self.sid, None
        if sid is None:
            return
        try:
            if self.leading:
                self.api.kv.put(self.key, self.me, release=sid)
                self.leading = False
            self.api.session.destroy(sid)
            self.api.agent.service.deregister(self.service_id)
        except (consul.ConsulException, requests.RequestException, OSError) as exc:
            log.warning("could not release the leader lock: %s", type(exc).__name__)

