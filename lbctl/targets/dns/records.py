"""The records a model publishes in a zone, as lbctl owns them (docs/dns.md).  Pure.

Each pool with a ``dns`` mapping publishes one name: its A/AAAA RRsets hold the
addresses of its serving members (enabled ones; the backup ones only when no
enabled member serves), or one CNAME to its one serving host-name member; SRV
records ``_<port_name>._tcp.<name>`` carry priority (backup: higher), weight and
port, pointing at ``<member>.<name>``, whose A/AAAA records lbctl publishes too.

Every name lbctl publishes has an ownership TXT RRset at ``_lbctl.<name>`` (like
external-dns's registry): its owner id and pool, and one string per RRset lbctl
wrote for the name.  lbctl touches only the RRsets listed there under its own
owner id.  ``State``, every owned RRset with its registry, is also the text form
of a dns target (``Change.live``/``candidate``, backups): zone-file lines.

Also the ``records`` format of ``lbctl render -t dns``: ``text`` and ``validate``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from lbctl import guard, model
from lbctl.validate import is_ipv4
from lbctl.errors import ConfigError

Key = tuple[str, str]  # (absolute node, lower case with its final dot; record type)
REGISTRY = "_lbctl"
HERITAGE = "heritage=lbctl"
ADDRESS_TYPES = ("A", "AAAA", "CNAME")  # what the name itself answers with
SRV_PRIORITY = {"enabled": 10, "backup": 20}
LINE = re.compile(r"(\S+) (\d+) IN (A|AAAA|CNAME|SRV|TXT) (.+)", re.ASCII)
HEADER = "; lbctl dns records: every RRset lbctl owns in the zone, with its ownership TXT records\n"


@dataclass(frozen=True)
class RRset:
    node: str
    type: str
    ttl: int
    rdatas: tuple[str, ...]  # canonical text, sorted

    @property
    def key(self) -> Key:
        return self.node, self.type


@dataclass
class Name:
    """One published name: its pool and the RRsets lbctl wants for it (none may be empty)."""

    node: str
    owner: str
    pool: str
    rrsets: dict[Key, RRset] = field(default_factory=dict)
    empty: set[Key] = field(default_factory=set)  # RRsets the pool publishes that no member fills now

    @property
    def registry(self) -> str:
        return f"{REGISTRY}.{self.node}"

    def registry_rrset(self, ttl: int) -> RRset:
        head = f"{HERITAGE},lbctl/owner={self.owner},lbctl/pool={self.pool}"
        return RRset(self.registry, "TXT", ttl, tuple(sorted(
            [quote(head)] + [quote(f"lbctl/rrset={t}/{relative(n, self.node)}") for n, t in self.rrsets])))

    def addresses(self) -> frozenset[str]:
        """What the name answers with (the guard's "serving members")."""
        return frozenset(r for (n, t), s in self.rrsets.items() if n == self.node and t in ADDRESS_TYPES
                         for r in s.rdatas)


State = dict[Key, RRset]


def quote(text: str) -> str:
    return f'"{text}"'


def relative(node: str, name: str) -> str:
    return "@" if node == name else node.removesuffix(f".{name}")


def absolute(relative_name: str, zone: str) -> str:
    return zone if relative_name == "@" else f"{relative_name}.{zone}"


def flatten(names: dict[str, Name], ttl: int) -> State:
    """Every RRset of ``names``, with their ownership TXT RRsets."""
    state: State = {}
    for name in names.values():
        state.update(name.rrsets)
        reg = name.registry_rrset(ttl)
        state[reg.key] = reg
    return state


# -- the model's names ------------------------------------------------------------------
def wanted(desired: model.Desired, zone: str, owner: str, ttl: int) -> dict[str, Name]:
    """The names ``desired`` publishes in ``zone``, by node.

    :raises ConfigError: two pools publish one name, or a pool cannot be published.
    """
    if not zone:
        raise ConfigError("a dns target's records need its zone: name a dns target of a config (--config)")
    names: dict[str, Name] = {}
    for pool in desired.pools:
        if pool.dns is None:
            continue
        node = absolute(pool.dns.name, zone)
        if node in names:
            raise ConfigError(f"pools {names[node].pool} and {pool.name} both publish {node} (pools.*.dns.name)")
        names[node] = publish(pool, pool.dns, Name(node, owner, pool.name), ttl)
    return names


def serving(pool: model.Pool) -> list[model.Member]:
    """The members a name answers with: the enabled ones, else the backup ones (failover)."""
    return [m for m in pool.members if m.state == "enabled"] or [m for m in pool.members if m.state == "backup"]


def publish(pool: model.Pool, dns: model.DnsName, name: Name, ttl: int) -> Name:
    members = serving(pool)
    where = f"pool {pool.name} ({name.node})"
    hosts = sorted({m.address for m in members if not is_ip(m.address)})
    if "CNAME" in dns.types:
        if any(is_ip(m.address) for m in members) or len(hosts) > 1:
            raise ConfigError(f"{where}: a CNAME points at one host name, but the serving members are "
                              f"{', '.join(sorted({m.address for m in members}))}; publish A/AAAA records instead")
        add(name, name.node, "CNAME", ttl, [f"{hosts[0]}."] if hosts else [])
    elif hosts and {"A", "AAAA"} & set(dns.types):
        raise ConfigError(f"{where}: member address {hosts[0]} is a host name; A/AAAA records hold IP addresses "
                          "(give the members IP addresses, or publish the one host as types: [CNAME])")
    for rtype, version in (("A", 4), ("AAAA", 6)):
        if rtype in dns.types:
            add(name, name.node, rtype, ttl, [m.address for m in members  # canonical already (lbctl.validate)
                                              if is_ip(m.address) and ip_version(m.address) == version])
    if "SRV" in dns.types:
        srv_records(pool, dns, name, ttl)
    return name


def srv_records(pool: model.Pool, dns: model.DnsName, name: Name, ttl: int) -> None:
    """SRV records for every serving member (backup ones at a higher priority) and the
    address records of their targets, ``<member label>.<name>``."""
    rdatas = []
    labels = member_labels([m.name for m in pool.members])
    for m in pool.members:
        if m.state not in SRV_PRIORITY:
            continue
        if is_ip(m.address):
            target = f"{labels[m.name]}.{name.node}"
            add(name, target, "A" if ip_version(m.address) == 4 else "AAAA", ttl, [m.address])
        else:
            target = f"{m.address}."
        rdatas.append(f"{SRV_PRIORITY[m.state]} {m.weight} {m.port} {target}")
    add(name, f"_{dns.port_name}._tcp.{name.node}", "SRV", ttl, rdatas)


def member_labels(names: list[str]) -> dict[str, str]:
    """A DNS label for each member name (``web-1``); a short hash tells apart names that
    become the same label."""
    labels = {n: re.sub(r"[^a-z0-9-]", "-", n.lower()).strip("-")[:50] or "m" for n in names}
    clash = {label for label, count in Counter(labels.values()).items() if count > 1}
    return {n: f"{label}-{hashlib.sha256(n.encode()).hexdigest()[:8]}" if label in clash else label
            for n, label in labels.items()}


def add(name: Name, node: str, rtype: str, ttl: int, rdatas: list[str]) -> None:
    if not rdatas:
        name.empty.add((node, rtype))
    else:
        existing = name.rrsets.get((node, rtype))
        rdatas = sorted(set(rdatas) | set(existing.rdatas if existing else ()))
        name.rrsets[node, rtype] = RRset(node, rtype, ttl, tuple(rdatas))


def is_ip(address: str) -> bool:
    """The model's addresses are checked IP addresses or host names (lbctl.validate)."""
    return ":" in address or is_ipv4(address)


def ip_version(address: str) -> int:
    return 6 if ":" in address else 4


# -- the text form ----------------------------------------------------------------------
def state_text(state: State) -> str:
    """Zone-file lines of ``state``, one per record, sorted."""
    lines = sorted(f"{s.node} {s.ttl} IN {s.type} {r}" for s in state.values() for r in s.rdatas)
    return HEADER + "".join(f"{line}\n" for line in lines)


def parse(text_: str, where: str) -> State:
    """``text``'s inverse.  :raises ConfigError: a line that is not one of ours."""
    found: dict[Key, tuple[int, list[str]]] = {}
    for n, line in enumerate(text_.splitlines(), 1):
        if not line or line.startswith(";"):
            continue
        match = LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"{where}: line {n}: not a record line of lbctl's (node ttl IN type data)")
        node, ttl, rtype, rdata = match.groups()
        found.setdefault((node, rtype), (int(ttl), []))[1].append(rdata)
    return {key: RRset(*key, ttl, tuple(sorted(rdatas))) for key, (ttl, rdatas) in found.items()}


def names_of(state: State, owner: str | None = None) -> dict[str, Name]:
    """The names whose ownership TXT RRsets are in ``state`` (``owner``'s only, if given),
    with the RRsets they list that ``state`` holds."""
    names = {}
    for (node, rtype), rrset in state.items():
        reg = registry(rrset) if rtype == "TXT" and node.startswith(f"{REGISTRY}.") else None
        if reg is None or owner is not None and reg[0] != owner:
            continue
        name = Name(node.removeprefix(f"{REGISTRY}."), reg[0], reg[1])
        name.rrsets = {k: state[k] for k in reg[2](name.node) if k in state}
        names[name.node] = name
    return names


@functools.lru_cache(maxsize=1 << 16)  # a watch reads the same ownership records every round
def registry(rrset: RRset) -> tuple[str, str, Callable] | None:
    """(owner, pool, keys of name) of an ownership TXT RRset; None: not lbctl's, or unreadable."""
    strings = [r.strip('"') for r in rrset.rdatas]
    head = next((s for s in strings if s.startswith(f"{HERITAGE},")), None)
    fields_ = dict(part.partition("=")[::2] for part in (head or "").split(",")[1:])
    if head is None or "lbctl/owner" not in fields_:
        return None
    listed = [s.removeprefix("lbctl/rrset=").partition("/") for s in strings if s.startswith("lbctl/rrset=")]
    listed = [entry for entry in listed if entry[0] in model.DNS_TYPES]  # never an SOA, NS, MX... whatever it says
    return fields_["lbctl/owner"], fields_.get("lbctl/pool", "?"), lambda node: [
        (node if rel == "@" else f"{rel}.{node}", rtype) for rtype, _, rel in listed]


def served(state: State) -> guard.Served:
    """Each published name's pool and the addresses it answers with."""
    return guard.Served(frozenset(), {n.pool: n.addresses() for n in names_of(state).values()})


# -- lbctl render --format records ------------------------------------------------------
def validate(desired: model.Desired, settings) -> None:
    """:raises ConfigError: ``desired`` cannot be published (``wanted``'s reasons)."""
    wanted(desired, settings.zone, settings.owner, settings.ttl)


def text(desired: model.Desired, settings) -> str:
    return state_text(flatten(wanted(desired, settings.zone, settings.owner, settings.ttl), settings.ttl))
