"""Inventory members in bulk: a JSON inventory decoded by msgspec in C into typed
structs (the model's ``Member``, or ``MemberIn`` when the file has members the
model cannot hold as they are), and the checks of many plain members at once
(lbctl/inventory.py calls them, and builds everything else one by one).  Pure.
"""

from __future__ import annotations

import _socket  # as in lbctl.validate
import re
from itertools import accumulate, chain, repeat
from operator import attrgetter, lt
from typing import Any, Literal, Mapping

import msgspec

from lbctl import model
from lbctl import validate as v


class MemberIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A member as an inventory (or discovery) writes it, with its keys, types and
    ranges checked; the values are checked further by ``inventory.member`` or ``plain_members``."""

    name: str | None = None
    address: str
    port: model.PORT
    weight: model.WEIGHT | None = None
    state: Literal[model.MEMBER_STATES] | None = None
    tags: list[str] | None = None
    meta: dict[str, str] | None = None


TOP_KEYS = ("version", "defaults", "listeners", "pools")


def document(member: type) -> msgspec.json.Decoder:
    """A decoder of inventories whose members decode as ``member``."""
    # A pool body's values: a JSON array can only be the members (anything else is refused, so json.loads decides).
    value = str | int | float | bool | None | dict[str, Any] | list[member]
    pools = dict[str, dict[str, value] | None] | None
    fields = [(key, pools if key == "pools" else Any, msgspec.UNSET) for key in TOP_KEYS]
    return msgspec.json.Decoder(msgspec.defstruct("Document", fields, forbid_unknown_fields=True))


# Members straight into the model's struct (named, no null, no meta: see ``decoded``),
# else into ``MemberIn``s.
_decoders = (document(model.Member), document(MemberIn))
DECODED = (MemberIn, model.Member)  # the types a JSON inventory's members decode into


def decoded(text: bytes) -> dict | None:
    """The JSON document as ``json.loads`` gives it, with members as ``model.Member``s
    (all of them, when the file allows) or ``MemberIn``s;
    None when msgspec refuses it (``json.loads`` then decides and reports errors).
    Where msgspec accepts, it decodes every value as ``json.loads`` does."""
    # A member's meta decodes as the model's pairs, which a JSON object is not (json.loads
    # and the validators decide); only a key spelled "meta" (no escapes) can be one.
    plain_only = b"\\" not in text and b'"meta"' not in text
    for decoder in _decoders[0 if plain_only else 1:]:
        try:
            doc = decoder.decode(text)
        except msgspec.MsgspecError:
            continue
        return {key: getattr(doc, key) for key in TOP_KEYS if getattr(doc, key) is not msgspec.UNSET}
    return None


NAMES = re.compile(rf"(?:{v.IDENT.pattern}\n)*", re.ASCII)  # v.IDENT, for many names at once, one a line
by_name = attrgetter("name")


def plain(items: list[MemberIn] | list[model.Member]) -> tuple[list[str], list[str], list[model.Member]] | None:
    """The names, addresses and built members of ``items`` if every one is plain:
    a valid name, an IPv4 address, no tags or meta; else None.  In C but for one
    Python loop to build the members (``items`` themselves, if decoded as the model)."""
    names = [m.name for m in items]
    joined = "\n".join(names) + "\n" if None not in names else ""
    if not NAMES.fullmatch(joined) or joined.count("\n") != len(names) or any(m.tags or m.meta for m in items):
        return None
    addresses = [m.address for m in items]
    try:
        b"".join(map(_socket.inet_pton, repeat(_socket.AF_INET), addresses))  # v.is_ipv4, for all at once
    except (OSError, ValueError):
        return None
    if type(items[0]) is model.Member:  # decoded as such: nothing to build
        return names, addresses, items
    member_ = model.Member
    return names, addresses, [member_(m.name, m.address, m.port, m.weight or 1, m.state or "enabled") for m in items]


def repeats(names: list[str], addresses: list[str], ports: list[int]) -> bool:
    """Whether a name or an endpoint repeats (``duplicates`` then says which)."""
    return len(set(names)) != len(names) or len(set(zip(addresses, ports))) != len(names)


def plain_pools(bodies: Mapping[str, Any]) -> dict[str, list[model.Member]]:
    """The members of the pools decoded from JSON, sorted, when all of them are
    plain, checked at once over the whole inventory; {} if any is not, and then
    ``members`` checks each pool on its own."""
    lists = {name: b["members"] for name, b in bodies.items()
             if type(b) is dict and type(b.get("members")) is list and b["members"] and type(b["members"][0]) in DECODED}
    items = list(chain.from_iterable(lists.values()))
    found = plain(items)
    if found is None or not found[0]:
        return {}
    names, addresses, built = found
    ends = list(accumulate(map(len, lists.values())))
    spans = list(zip(lists, [0, *ends], ends))
    # The usual case: names already in order within each pool (so none repeats)
    # and no address used twice anywhere (so no endpoint repeats).
    ascending = list(map(lt, names, names[1:]))  # operator.lt: twice as fast as str.__lt__
    for end in ends[:-1]:
        ascending[end - 1] = True  # the last member of a pool and the first of the next
    if all(ascending) and len(set(addresses)) == len(addresses):
        # decoded as the model (``plain`` built nothing): each pool's list is its members
        return lists if built is items else {name: built[start:end] for name, start, end in spans}
    ports = [m.port for m in built]
    return {name: sorted(built[start:end], key=by_name) for name, start, end in spans
            if not repeats(names[start:end], addresses[start:end], ports[start:end])}


def plain_members(raw: Any) -> list[model.Member] | None:
    """The members of one pool, when all are plain and none repeats a name or an
    endpoint; None for anything else, which ``member`` then builds (or refuses)
    one by one."""
    if type(raw) is not list or not raw:
        return None
    if type(raw[0]) not in DECODED:
        try:
            raw = msgspec.convert(raw, list[MemberIn])
        except msgspec.ValidationError:
            return None
    found = plain(raw)
    if found is None or repeats(found[0], found[1], [m.port for m in raw]):
        return None
    return found[2]
