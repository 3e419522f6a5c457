"""Reading the haproxy.cfg lbctl renders: its server lines, and which changes
between two renders the Runtime API can make without a reload.  Pure.

A change is runtime-capable when every line but ``server`` lines is unchanged,
servers only come and go (dynamic servers) or keep their names and order
(slots), and each changed server line differs only in address, weight or
``disabled`` — with the address changing only on a server that was disabled (a
slot being filled): a live server is never re-addressed, since its keep-alive
clients would stay on the old address (docs/upstream.md#haproxy-runtime-api).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from lbctl import guard, textdiff

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
    """What one server must become: ``state`` ready or maint.  ``action``: set (an
    existing server), add (a new one, with ``keywords``: its line's and the
    backend's ``default-server`` ones) or del (it goes)."""

    backend: str
    server: str
    address: str
    port: int
    weight: int
    state: str
    readdress: bool
    action: str = "set"
    keywords: tuple[str, ...] = ()


def split_endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def section_start(text: str, pos: int) -> tuple[int, str]:
    """Where the section that the line starting at ``pos`` belongs to begins, and its
    backend (or listen section) name; "" outside one."""
    end = pos
    while end > 0:
        begin = text.rfind("\n", 0, end - 1) + 1
        section = SECTION.match(text[begin:end])
        if section:
            return begin, section.group(2) if section.group(1) in ("backend", "listen") else ""
        end = begin
    return 0, ""


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


SERVERS = "\0servers"  # in a skeleton: a run of server lines
STATIC_BALANCE = ("balance source", "balance uri", "balance url_param", "balance hdr", "balance rdp-cookie",
                  "balance static-rr", "hash-type")  # no ``add server`` (HAProxy: not a dynamic algorithm)


@dataclass
class Stretch:
    """The differing lines of one text, read once: the other lines (each run of
    server lines as one ``SERVERS``), the servers, and per backend the
    ``default-server`` keywords and whether it can take dynamic servers."""

    skeleton: list[str]
    servers: dict[tuple[str, str], Server]
    defaults: dict[str, tuple[str, ...]]
    dynamic: dict[str, bool]


def read_stretch(text: str, start: int, lines: list[str]) -> Stretch:
    """``lines`` (the stretch of ``text`` from ``start``) as a ``Stretch``."""
    header, backend = section_start(text, start)
    out = Stretch([], {}, {}, {})
    before = text[header:start].split("\n")  # the section before the stretch: its settings
    for line in before:
        note_settings(out, backend, line)
    if len(before) > 1 and server_line(backend, before[-2]):
        out.skeleton.append(SERVERS)  # the stretch starts within a run of servers
    for line in lines:
        section = SECTION.match(line)
        if section:
            backend = section.group(2) if section.group(1) in ("backend", "listen") else ""
        server = server_line(backend, line)
        if server is None:
            note_settings(out, backend, line)
            out.skeleton.append(line)
        else:
            out.servers[backend, server.name] = server
            if out.skeleton[-1:] != [SERVERS]:
                out.skeleton.append(SERVERS)
    end = start + sum(len(line) + 1 for line in lines)
    following = text[end:(text.find("\n", end) + 1 or len(text) + 1) - 1] if end < len(text) else ""
    if server_line(backend, following) and out.skeleton[-1:] != [SERVERS]:
        out.skeleton.append(SERVERS)  # the last run of servers goes on after the stretch
    return out


def note_settings(out: Stretch, backend: str, line: str) -> None:
    words = line.split()
    if words[:1] == ["default-server"]:
        out.defaults[backend] = tuple(words[1:])
    if line.strip().startswith(STATIC_BALANCE):
        out.dynamic[backend] = False


def server_delta(old: str | None, new: str, dynamic: bool = False
                 ) -> tuple[list[tuple[Server | None, Server | None]], Stretch] | None:
    """The server lines that differ between ``old`` and ``new`` as (before, after),
    with the new text's ``Stretch``; None unless nothing else differs: every other
    line the same, each differing server only in address, port, weight or
    ``disabled``, and the same servers in the same order (``dynamic``: servers may
    also come and go, in the runs of server lines).  Reads the differing stretch only.
    """
    if old is None:
        return None
    if old == new:
        return [], Stretch([], {}, {}, {})
    start, old_lines, new_lines = textdiff.stretch(old, new)
    before, after = read_stretch(old, start, old_lines), read_stretch(new, start, new_lines)
    if before.skeleton != after.skeleton or (not dynamic and list(before.servers) != list(after.servers)):
        return None
    pairs = [(before.servers.get(key), after.servers.get(key)) for key in {**before.servers, **after.servers}]
    pairs = [(a, b) for a, b in pairs if a != b]
    if any(a is not None and b is not None and a.rest != b.rest for a, b in pairs):
        return None
    return pairs, after


def runtime_changes(old: str | None, new: str, dynamic: bool = False) -> list[ServerChange] | None:
    """The Runtime API changes that turn ``old`` into ``new``, or None if a reload is needed.

    A ``server_delta`` in which no server that takes traffic changes address (its
    keep-alive clients would stay on the old one); ``dynamic``: servers that come
    are added (``add server``: not with a cookie or a static balance algorithm),
    servers that go are deleted.  On the path from a Consul change to HAProxy serving it.
    """
    found = server_delta(old, new, dynamic)
    if found is None:
        return None
    delta, stretch = found
    changes = []
    for before, after in delta:
        if after is None:
            changes.append(ServerChange(before.backend, before.name, before.address, before.port, before.weight,
                                        "maint", False, "del"))
            continue
        state = "maint" if after.disabled else "ready"
        if before is None:
            if "cookie" in after.rest or not stretch.dynamic.get(after.backend, True):
                return None
            keywords = after.rest + stretch.defaults.get(after.backend, ())
            changes.append(ServerChange(after.backend, after.name, after.address, after.port, after.weight,
                                        state, False, "add", keywords))
            continue
        readdress = (before.address, before.port) != (after.address, after.port)
        if after.disabled:
            readdress = False  # a slot being freed keeps its address until the next reload
        elif readdress and not before.disabled:
            return None
        changes.append(ServerChange(after.backend, after.name, after.address, after.port, after.weight,
                                    state, readdress))
    return changes


def valid(server: Server, added: bool = False) -> bool:
    """Whether a server line's values are ones HAProxy accepts without looking anything
    up: an IP address (no name to resolve), a port, a weight in 0-256; for a line
    ``added`` among others, also only the keywords lbctl renders (``backup``, ``maxconn N``)."""
    try:
        ipaddress.ip_address(server.address)
    except ValueError:
        return False
    if added and not all(word in ("backup", "maxconn") or word.isdigit() for word in server.rest):
        return False
    return 0 < server.port < 65536 and 0 <= server.weight <= 256


def commands(change: ServerChange) -> list[str]:
    """The stats-socket commands for one change, in a safe order: address and weight
    before a server takes traffic, maintenance before anything else when it stops
    (and before ``del server``, which HAProxy requires)."""
    target = f"{change.backend}/{change.server}"
    if change.action == "del":
        return [f"set server {target} state maint", f"del server {target}"]
    if change.action == "add":  # a new server starts in maintenance, its check disabled
        endpoint = f"[{change.address}]:{change.port}" if ":" in change.address else f"{change.address}:{change.port}"
        out = [" ".join(["add server", target, endpoint, "weight", str(change.weight), *change.keywords])]
        if "check" in change.keywords:
            out.append(f"enable health {target}")
        return out + ([f"set server {target} state ready"] if change.state == "ready" else [])
    if change.state == "maint":
        return [f"set server {target} state maint"]
    out = []
    if change.readdress:
        out.append(f"set server {target} addr {change.address} port {change.port}")
    out += [f"set server {target} weight {change.weight}", f"set server {target} state ready"]
    return out


SLOT_NAME = re.compile(r"slot\d+")
# use_backend or default_backend, and whether a service declared the route (model.service_pools)
ROUTE = re.compile(r"^\s*(?:use|default)_backend (\S+)(.*)$")


def served(text: str | None) -> guard.Served:
    """What a haproxy.cfg serves, for the removal guard: its frontends and ``listen``
    sections, and per backend the servers that take traffic (not ``disabled``, weight
    above 0).  A slot's member is known by its address, any other server by its name.  The
    backends only ``use_backend`` lines marked ``# service`` send to: ``model.service_pools``."""
    if not text:
        return guard.Served()
    listeners, pools, routed, other = set(), {}, set(), set()
    for line in text.splitlines():
        section = SECTION.match(line)
        if section and section.group(1) in ("frontend", "listen"):
            listeners.add(section.group(2))
        if section and section.group(1) in ("backend", "listen"):
            pools.setdefault(section.group(2), set())
        if "_backend " in line and (route := ROUTE.match(line)):
            (routed if "  # service " in route.group(2) else other).add(route.group(1))
    for s in parse(text)[1]:
        if serving(s):
            pools[s.backend].add(identity(s))
    return guard.Served(frozenset(listeners), {name: frozenset(members) for name, members in pools.items()},
                        frozenset(routed - other))


def served_after(old: str | None, old_served: guard.Served, new: str) -> guard.Served:
    """``served(new)``, from what ``old`` serves when only server lines changed, came
    or went (the Runtime API path): the changed stretch only, not the whole file."""
    found = server_delta(old, new, dynamic=True)
    if found is None:
        return served(new)
    pools: dict[str, set[str]] = {}
    for before, after in found[0]:
        backend = (after or before).backend
        members = pools.setdefault(backend, set(old_served.pools.get(backend, ())))
        if before is not None and serving(before):
            members.discard(identity(before))
        if after is not None and serving(after):
            members.add(identity(after))
    return guard.Served(old_served.listeners, {**old_served.pools, **{k: frozenset(v) for k, v in pools.items()}},
                        old_served.routed)


def serving(server: Server) -> bool:
    return not server.disabled and server.weight > 0


def identity(server: Server) -> str:
    return f"{server.address}:{server.port}" if SLOT_NAME.fullmatch(server.name) else server.name
