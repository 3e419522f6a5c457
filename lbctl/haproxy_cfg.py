"""Reading the haproxy.cfg lbctl renders: its server lines, and which changes
between two renders the Runtime API can make without a reload.  Pure.

A change is runtime-capable when every line but ``server`` lines is unchanged,
every backend keeps the same servers in the same order, and each changed server
line differs only in address, weight or ``disabled`` — with the address changing
only on a server that was disabled (a slot being filled): a live server is never
re-addressed, since its keep-alive clients would stay on the old address
(docs/upstream.md#haproxy-runtime-api).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lbctl import guard

SECTION = re.compile(r"^(global|defaults|frontend|backend|listen|peers|resolvers|userlist|program|cache|mailers|ring"
                     r"|http-errors)\b\s*(\S*)")
SERVER = re.compile(r"^\s+server\s+(\S+)\s+(\S+)(.*)$")
PLACEHOLDER = ("127.0.0.1", 9)  # where a free slot points


@dataclass(frozen=True)
class Server:
    backend: str
    name: str
    address: str
    port: int
    weight: int
    disabled: bool
    rest: tuple[str, ...]  # every other keyword: backup, maxconn, cookie ...

    @property
    def free(self) -> bool:
        return self.disabled and (self.address, self.port) == PLACEHOLDER


@dataclass(frozen=True)
class ServerChange:
    """What one server must become: ``state`` ready or maint."""

    backend: str
    server: str
    address: str
    port: int
    weight: int
    state: str
    readdress: bool


def split_endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def section_of(lines: list[str], i: int) -> str:
    """The backend (or listen section) line ``i`` belongs to; "" outside one."""
    for j in range(i, -1, -1):
        section = SECTION.match(lines[j])
        if section:
            return section.group(2) if section.group(1) in ("backend", "listen") else ""
    return ""


def server_line(backend: str, line: str) -> Server | None:
    """One ``server`` line of ``backend`` as a ``Server``; None if it is not one."""
    server = SERVER.match(line) if backend else None
    if server is None:
        return None
    words = server.group(3).split()
    weight, rest, disabled = 1, [], False
    i = 0
    while i < len(words):
        if words[i] == "weight" and i + 1 < len(words) and words[i + 1].isdigit():
            weight, i = int(words[i + 1]), i + 2
            continue
        if words[i] == "disabled":
            disabled = True
        else:
            rest.append(words[i])
        i += 1
    address, port = split_endpoint(server.group(2))
    return Server(backend, server.group(1), address, port, weight, disabled, tuple(rest))


@lru_cache(maxsize=8)
def parse(text: str) -> tuple[list[str], list[Server]]:
    """The non-server lines (servers as ``server <backend>/<name>`` placeholders) and the servers.

    Cached: a watch round parses the live config and the candidate several times
    (slot layout, server states), and the next round's live config is this round's
    candidate.  Callers must not modify the lists.
    """
    skeleton, servers, backend = [], [], ""
    for line in text.splitlines():
        section = SECTION.match(line)
        if section:
            backend = section.group(2) if section.group(1) in ("backend", "listen") else ""
        server = server_line(backend, line)
        if server is None:
            skeleton.append(line)
        else:
            servers.append(server)
            skeleton.append(f"server {backend}/{server.name}")
    return skeleton, servers


def servers(text: str) -> dict[tuple[str, str], Server]:
    return {(s.backend, s.name): s for s in parse(text)[1]}


def runtime_changes(old: str | None, new: str) -> list[ServerChange] | None:
    """The Runtime API changes that turn ``old`` into ``new``, or None if a reload is needed.

    Compares line by line and parses only the lines that differ: this is on the
    path from a Consul change to HAProxy serving it.
    """
    if old is None:
        return None
    old_lines, new_lines = old.splitlines(), new.splitlines()
    if len(old_lines) != len(new_lines):
        return None
    changes = []
    for i in [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]:
        backend = section_of(new_lines, i)
        before, after = server_line(backend, old_lines[i]), server_line(backend, new_lines[i])
        if before is None or after is None or before.name != after.name:
            return None
        if before.rest != after.rest:
            return None
        readdress = (before.address, before.port) != (after.address, after.port)
        if after.disabled:
            readdress = False  # a slot being freed keeps its address until the next reload
        elif readdress and not before.disabled:
            return None
        changes.append(ServerChange(after.backend, after.name, after.address, after.port, after.weight,
                                    "maint" if after.disabled else "ready", readdress))
    return changes


def commands(change: ServerChange) -> list[str]:
    """The stats-socket commands for one change, in a safe order: address and weight
    before a server takes traffic, maintenance before anything else when it stops."""
    target = f"{change.backend}/{change.server}"
    if change.state == "maint":
        return [f"set server {target} state maint"]
    out = []
    if change.readdress:
        out.append(f"set server {target} addr {change.address} port {change.port}")
    out += [f"set server {target} weight {change.weight}", f"set server {target} state ready"]
    return out


SLOT_NAME = re.compile(r"slot\d+")


def served(text: str | None) -> guard.Served:
    """What a haproxy.cfg serves, for the removal guard: its frontends and ``listen``
    sections, and per backend the servers that take traffic (not ``disabled``, weight
    above 0).  A slot's member is known by its address, any other server by its name."""
    if not text:
        return guard.Served()
    listeners, pools = set(), {}
    for line in text.splitlines():
        section = SECTION.match(line)
        if section and section.group(1) in ("frontend", "listen"):
            listeners.add(section.group(2))
        if section and section.group(1) in ("backend", "listen"):
            pools.setdefault(section.group(2), set())
    for s in parse(text)[1]:
        if serving(s):
            pools[s.backend].add(identity(s))
    return guard.Served(frozenset(listeners), {name: frozenset(members) for name, members in pools.items()})


def served_after(old: str | None, old_served: guard.Served, new: str) -> guard.Served:
    """``served(new)``, from what ``old`` serves when only server lines changed (the
    Runtime API path): the changed lines only, not the whole file."""
    old_lines, new_lines = (old or "").splitlines(), new.splitlines()
    if old is None or len(old_lines) != len(new_lines):
        return served(new)
    pools: dict[str, set[str]] = {}
    for i in [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]:
        backend = section_of(new_lines, i)
        before, after = server_line(backend, old_lines[i]), server_line(backend, new_lines[i])
        if before is None or after is None:
            return served(new)
        members = pools.setdefault(backend, set(old_served.pools.get(backend, ())))
        if serving(before):
            members.discard(identity(before))
        if serving(after):
            members.add(identity(after))
    return guard.Served(old_served.listeners, {**old_served.pools, **{k: frozenset(v) for k, v in pools.items()}})


def serving(server: Server) -> bool:
    return not server.disabled and server.weight > 0


def identity(server: Server) -> str:
    return f"{server.address}:{server.port}" if SLOT_NAME.fullmatch(server.name) else server.name
