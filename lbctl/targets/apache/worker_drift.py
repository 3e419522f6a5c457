"""Runtime drift: where the workers Apache runs differ from the file in place.  Pure.

The file side is the ``BalancerMember`` lines lbctl renders (URL, ``route=``,
``loadfactor=``, ``status=``), the running side balancer-manager's state
(``balancers.Balancer``).  A worker differs in its route, load factor or the
status flags lbctl sets (``D``, ``N``, ``H``, ``S``), or by being in one and not
the other.  A worker that runs disabled without a route and is not in the file
is a member lbctl removed at runtime (Apache cannot delete one): not drift; it
goes at the next graceful restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from lbctl.targets.apache.balancers import MANAGED, PREFIX, Balancer, Op, Worker, endpoint

SHOWN = 5  # difference lines before "... and N more"
BALANCER = re.compile(r'^\s*<Proxy\s+"balancer://([^"]+)"')
MEMBER = re.compile(r'^\s*BalancerMember\s+"([^"]+)"(.*)$')
KEYWORD = re.compile(r"\b(route|loadfactor|status)=(\S+)")


@dataclass(frozen=True)
class Member:
    """A ``BalancerMember`` line of the file."""

    balancer: str
    url: str
    host: str
    port: int
    route: str
    loadfactor: int
    flags: frozenset[str]


@dataclass(frozen=True)
class Difference:
    balancer: str
    url: str
    what: str
    file: Member | None
    running: Worker | None
    where: str = ""  # the VirtualHost whose copy of the balancer it is


def members(text: str) -> dict[str, list[Member]]:
    """The ``BalancerMember`` lines of a rendered httpd.conf, per balancer name."""
    out: dict[str, list[Member]] = {}
    balancer = None
    for line in text.splitlines():
        if (m := BALANCER.match(line)) is not None:
            balancer = m.group(1)
            out[balancer] = []
        elif balancer is not None and (m := MEMBER.match(line)) is not None:
            words = dict(KEYWORD.findall(m.group(2)))
            host, port = endpoint(m.group(1))
            factor = words.get("loadfactor", "1")
            out[balancer].append(Member(balancer, m.group(1), host, port, words.get("route", ""),
                                        int(float(factor)) if factor.replace(".", "", 1).isdigit() else 1,
                                        frozenset(words.get("status", "").lstrip("+")) & frozenset(MANAGED)))
        elif line.strip().startswith("</Proxy>"):
            balancer = None
    return out


def differences(member: Member, worker: Worker) -> list[str]:
    out = []
    if worker.route != member.route:
        out.append(f"route {worker.route!r} (file {member.route!r})")
    if round(worker.loadfactor * 100) != member.loadfactor * 100:
        out.append(f"loadfactor {worker.loadfactor:g} (file {member.loadfactor})")
    flags = worker.flags & frozenset(MANAGED)
    if flags != member.flags:
        wanted = "+" + "".join(sorted(member.flags)) if member.flags else "enabled"
        out.append(f"status {worker.status.strip()!r} (file {wanted})")
    return out


def compare(text: str, running: dict[str, Balancer], held: tuple[str, ...] | None = None,
            where: str = "") -> list[Difference]:
    """The workers that differ, in the file's order, then those that only run; ``held``:
    the balancers of the VirtualHost ``running`` is (None: all), named ``where``."""
    return [replace(d, where=where) for d in differing(text, running, held)]


def differing(text: str, running: dict[str, Balancer], held: tuple[str, ...] | None) -> list[Difference]:
    out = []
    for name, listed in members(text).items():
        if held is not None and name not in held:
            continue
        balancer = running.get(name)
        if balancer is None:
            out.append(Difference(name, "", "is in the file but not running", None, None))
            continue
        seen = set()
        for member in listed:
            worker = balancer.worker(member.host, member.port)
            seen.add((member.host.lower(), member.port))
            if worker is None:
                out.append(Difference(name, member.url, "is in the file but not running", member, None))
            elif what := differences(member, worker):
                out.append(Difference(name, member.url, ", ".join(what), member, worker))
        out += [Difference(name, w.url, f"runs ({w.status.strip()}) but is not in the file", None, w)
                for w in balancer.workers
                if (w.host.lower(), w.port) not in seen and not ("D" in w.flags and not w.route)]
    return out


def report(path: str, found: list[Difference]) -> list[str]:
    """One drift line per worker, the first ``SHOWN``, then a count of the others."""
    lines = [f"running apache differs from {path}: {PREFIX}{d.balancer}"
             f"{' member ' + d.url if d.url else ''} {d.what}{' in ' + d.where if d.where else ''}"
             for d in found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"running apache differs from {path} in {len(found) - SHOWN} more workers")
    return lines


def repairs(found: list[Difference]) -> list[Op] | None:
    """The balancer-manager changes that make the running workers the file's again,
    or None when a graceful restart is needed (a worker or balancer of the file does
    not run)."""
    ops = []
    for d in found:
        if d.file is None and d.running is not None:  # runs, not in the file: disabled, as a removed member
            ops.append(Op(d.balancer, d.running.url, "", round(d.running.loadfactor) or 1, frozenset("D")))
        elif d.file is None or d.running is None:
            return None
        else:
            ops.append(Op(d.balancer, d.running.url, d.file.route, d.file.loadfactor, d.file.flags))
    return ops
