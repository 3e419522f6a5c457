"""A dns target's I/O: the zone read over AXFR, direct queries, and RFC 2136 UPDATE
messages, all over TCP to the primary and signed with the TSIG key.  dnspython does
every bit of the wire work; this module only maps lbctl's records to it and its
errors to lbctl's (one line each, never the secret).  The one module that imports
dnspython (pyproject.toml's contracts).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from lbctl.errors import ApplyError, ConfigError, Temporary
from lbctl.targets.dns.plan import Op
from lbctl.targets.dns.records import RRset, State

MESSAGE_BUDGET = 60_000  # bytes of records per UPDATE (a DNS message over TCP is at most 65,535)
CONFLICTS = (dns.rcode.YXRRSET, dns.rcode.NXRRSET, dns.rcode.YXDOMAIN, dns.rcode.NXDOMAIN)


class Unreachable(Temporary):
    """The primary did not answer (down, timed out, connection refused)."""


class Conflict(ApplyError):
    """A prerequisite failed: someone changed the records since lbctl read them; nothing was applied."""


@dataclass(frozen=True)
class Server:
    address: str
    port: int
    zone: str
    key_name: str
    algorithm: str
    secret: str = field(repr=False)  # never shown, even in a traceback's locals
    timeout: float = 5.0

    @property
    def where(self) -> str:
        return where(self.address, self.port)

    def keyring(self) -> dict:
        try:
            return {dns.name.from_text(self.key_name): dns.tsig.Key(self.key_name, self.secret, self.algorithm)}
        except (ValueError, TypeError, dns.exception.DNSException):  # binascii.Error is a ValueError
            raise ConfigError(f"the TSIG secret of key {self.key_name} is not base64") from None

    def signed(self, message: dns.message.Message) -> dns.message.Message:
        message.use_tsig(self.keyring(), keyname=self.key_name, algorithm=self.algorithm)
        return message


def where(address: str, port: int) -> str:
    """``address:port`` (``[v6]:port``), for messages."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def failure(server: Server, what: str, exc: BaseException) -> Exception:
    """An lbctl error for ``exc`` raised while ``what`` (one line, naming the server)."""
    if isinstance(exc, (OSError, EOFError, dns.exception.Timeout)):
        reason = getattr(exc, "strerror", None) or ("timed out" if isinstance(exc, dns.exception.Timeout)
                                                   else str(exc) or type(exc).__name__)
        return Unreachable(f"cannot reach the primary {server.where} ({what}): {reason}")
    if isinstance(exc, dns.tsig.PeerError):
        return ApplyError(f"the primary {server.where} refused TSIG key {server.key_name} ({what}): "
                          f"{type(exc).__name__.removeprefix('Peer')}; check key_name, key_algorithm and the secret")
    if isinstance(exc, dns.tsig.BadSignature):
        return ApplyError(f"the answer of {server.where} ({what}) failed TSIG verification: check the secret")
    return ApplyError(f"the primary {server.where} ({what}): {exc or type(exc).__name__}")


def rrsets(zone: dns.zone.Zone) -> tuple[int, State]:
    """The serial and every RRset of a transferred zone, in lbctl's canonical text."""
    state: State = {}
    serial = 0
    for name, rdataset in zone.iterate_rdatasets():
        node = name.to_text().lower()
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        if rtype == "SOA":
            serial = rdataset[0].serial
        state[node, rtype] = RRset(node, rtype, rdataset.ttl, tuple(sorted(canonical(r, rtype) for r in rdataset)))
    return serial, state


def canonical(rdata, rtype: str) -> str:
    if rtype in ("A", "AAAA"):
        return str(ipaddress.ip_address(rdata.address))
    return rdata.to_text().lower() if rtype in ("CNAME", "SRV") else rdata.to_text()


def read(server: Server) -> tuple[int, State]:
    """The whole zone, over AXFR signed with the key.  :raises Unreachable, ApplyError:"""
    try:
        zone = dns.zone.from_xfr(dns.query.xfr(
            server.address, server.zone, port=server.port, keyring=server.keyring(), keyname=server.key_name,
            keyalgorithm=server.algorithm, relativize=False, lifetime=server.timeout, timeout=server.timeout),
            relativize=False)
    except dns.xfr.TransferError as exc:
        raise ApplyError(f"the primary {server.where} refused the zone transfer of {server.zone} "
                         f"({dns.rcode.to_text(exc.rcode)}): is it the zone's primary, and may the key transfer it "
                         "(BIND: allow-transfer)?") from None
    except (dns.exception.DNSException, OSError, EOFError) as exc:
        raise failure(server, f"reading zone {server.zone}", exc) from None
    return rrsets(zone)


def query(server: Server, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, ...]]:
    """The records the primary answers for each (node, type), asked directly, one TCP connection."""
    found = {}
    try:
        with socket.create_connection((server.address, server.port), timeout=server.timeout) as sock:
            for node, rtype in keys:
                answer = dns.query.tcp(server.signed(dns.message.make_query(node, rtype)), server.address,
                                       timeout=server.timeout, sock=sock)
                found[node, rtype] = tuple(sorted(canonical(r, rtype) for rrset in answer.answer
                                                  if rrset.rdtype == dns.rdatatype.from_text(rtype) for r in rrset))
    except (dns.exception.DNSException, OSError, EOFError) as exc:
        raise failure(server, "querying the records back", exc) from None
    return found


def serial(server: Server) -> int:
    """The zone's SOA serial, asked directly.  :raises Unreachable, ApplyError:"""
    soa = query(server, [(server.zone, "SOA")])[server.zone, "SOA"]
    if len(soa) != 1:
        raise ApplyError(f"the primary {server.where} has no SOA record for {server.zone}: is it the zone's primary?")
    return int(soa[0].split()[2])


def messages(ops: tuple[Op, ...]) -> list[list[Op]]:
    """``ops`` in as few UPDATE messages as fit (all in one, but for a change of megabytes),
    a name never split between two."""
    chunks: list[list[Op]] = [[]]
    size = 0
    for i, op in enumerate(ops):
        cost = sum(len(s.node) + 12 + sum(len(r) + 12 for r in s.rdatas) for s in (op.old, op.new) if s)
        new_name = i and ops[i - 1].name != op.name
        if new_name and size + cost > MESSAGE_BUDGET and chunks[-1]:
            chunks.append([])
            size = 0
        chunks[-1].append(op)
        size += cost
    return chunks


def update(server: Server, ops: list[Op]) -> int:
    """One UPDATE: every op's RRset as read as a prerequisite (value-dependent when it
    existed, "does not exist" when not), then the new RRsets.  Atomic at the server
    (RFC 2136 3.2, 3.4).  The bytes sent.

    :raises Conflict: a prerequisite failed.  :raises Unreachable, ApplyError:
    """
    msg = message(server, ops)
    try:
        wire = msg.to_wire()
        answer = dns.query.tcp(msg, server.address, timeout=server.timeout, port=server.port)
    except (dns.exception.DNSException, OSError, EOFError) as exc:
        raise failure(server, "sending the UPDATE", exc) from None
    rcode = answer.rcode()
    if rcode in CONFLICTS:
        raise Conflict(f"the records changed since lbctl read them ({dns.rcode.to_text(rcode)}); nothing was applied")
    if rcode != dns.rcode.NOERROR:
        raise ApplyError(f"the primary {server.where} answered the UPDATE with {dns.rcode.to_text(rcode)}: "
                         f"{'the key may not update this zone' if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH) else 'rejected'}; "
                         "nothing was applied")
    return len(wire)


def message(server: Server, ops: list[Op]) -> dns.update.UpdateMessage:
    """The UPDATE for ``ops``, signed: prerequisites, then the changes."""
    msg = dns.update.UpdateMessage(server.zone, keyring=server.keyring(), keyname=dns.name.from_text(server.key_name),
                                   keyalgorithm=server.algorithm)
    for op in ops:
        if op.old is None:
            msg.absent(op.key[0], op.key[1])
        else:
            msg.present(op.old.node, rdataset(op.old, ttl=0))
    for op in ops:
        if op.new is None:
            msg.delete(op.key[0], op.key[1])
        else:
            msg.replace(op.new.node, rdataset(op.new))
    return msg


def rdataset(rrset: RRset, ttl: int | None = None) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text_list("IN", rrset.type, rrset.ttl if ttl is None else ttl, list(rrset.rdatas))
