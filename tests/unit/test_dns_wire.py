"""The dns target's wire module without a server: how a change is cut into UPDATE
messages, the messages' prerequisites, and that the secret never shows."""

from __future__ import annotations

import dns.rcode

from lbctl.targets.dns import wire
from lbctl.targets.dns.plan import Op
from lbctl.targets.dns.records import RRset

SERVER = wire.Server("127.0.0.1", 53, "example.com.", "k.", "hmac-sha256", "c2VjcmV0LXNlY3JldA==", 1.0)


def op(name: str, n: int = 5, old: bool = True) -> Op:
    node = f"{name}.example.com."
    new = RRset(node, "A", 30, tuple(f"10.0.{i // 250}.{i % 250}" for i in range(n)))
    return Op((node, "A"), RRset(node, "A", 30, ("10.9.9.9",)) if old else None, new, node)


def test_a_change_is_one_message_unless_it_is_too_big():
    ops = tuple(op(f"n{i:03d}") for i in range(100))
    assert wire.messages(ops) == [list(ops)]
    big = tuple(op(f"n{i:03d}", 200) for i in range(100))  # ~ 100 x 200 x 20 bytes
    chunks = wire.messages(big)
    assert len(chunks) > 1 and [o for c in chunks for o in c] == list(big)


def test_a_name_is_never_split_between_messages():
    ops = tuple(o for i in range(60) for o in (op(f"n{i:03d}", 150), Op((f"_lbctl.n{i:03d}.example.com.", "TXT"),
                                                                         None, None, f"n{i:03d}.example.com.")))
    chunks = wire.messages(ops)
    assert len(chunks) > 1
    for chunk in chunks[1:]:
        assert chunk[0].key[0].startswith("n")  # every chunk starts with a name's first RRset


def test_one_message_compare_and_swap_on_what_was_read():
    gone = Op(("old.example.com.", "A"), RRset("old.example.com.", "A", 30, ("10.1.1.1",)), None, "old.example.com.")
    text = wire.message(SERVER, [op("www"), op("api", old=False), gone]).to_text()
    prereq, update = text.split(";PREREQ\n")[1].split(";UPDATE\n")
    # value-dependent "exists exactly so" for what was read, "does not exist" for what was not
    assert prereq.splitlines() == ["www.example.com. 0 IN A 10.9.9.9", "api.example.com. NONE A",
                                   "old.example.com. 0 IN A 10.1.1.1"]
    lines = update.split(";ADDITIONAL")[0].splitlines()
    assert lines[0] == "www.example.com. ANY A" and "www.example.com. 30 IN A 10.0.0.4" in lines  # replaced whole
    assert "old.example.com. ANY A" in lines and not any(line.startswith("old.example.com. 30") for line in lines)


def test_the_secret_never_shows():
    assert "c2VjcmV0" not in repr(SERVER) and "c2VjcmV0" not in str(SERVER)
    assert wire.CONFLICTS == (dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.YXDOMAIN, dns.rcode.NXDOMAIN)
