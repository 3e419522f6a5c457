"""What Apache's balancer-manager shows and what lbctl asks of it.  Pure.

The running state is the handler's ``?xml=1`` page (``mod_proxy_balancer.c``,
``balancer_display_page``, httpd 2.4): per balancer its name and nonce, per worker
its URL (the worker's name), route, load factor and status words.

Status words (``ap_proxy_parse_wstatus``, measured on 2.4.71): ``Init``, then
``Dis`` (disabled), ``Drn`` (draining), ``Stby`` (hot standby), ``Stop``
(stopped), ``Err`` (in error), ``HcFl`` (health check failed), ``Spar`` (hot
spare), ``Ign`` (ignore errors), and ``Ok`` when the worker is usable.  The
form fields that set them are ``w_status_<letter>`` (``FLAGS``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from lbctl.errors import CommandError

PREFIX = "balancer://"
NS = "{http://httpd.apache.org}"
FLAGS = {"Dis": "D", "Drn": "N", "Stby": "H", "Stop": "S", "Err": "E", "HcFl": "C", "Spar": "R", "Ign": "I"}
MANAGED = "DNHS"  # the flags lbctl sets and clears; the others (errors, health) are Apache's own


@dataclass(frozen=True)
class Worker:
    url: str  # the worker's name: its URL as the configuration gave it
    host: str
    port: int
    route: str
    loadfactor: float
    status: str  # as shown, e.g. "Init Dis "

    @property
    def flags(self) -> frozenset[str]:
        """The status letters set (``FLAGS``)."""
        return frozenset(FLAGS[word] for word in self.status.split() if word in FLAGS)

    @property
    def usable(self) -> bool:
        return "Ok" in self.status.split()


@dataclass(frozen=True)
class Balancer:
    name: str  # the pool name: balancer://<name>
    nonce: str
    workers: tuple[Worker, ...]

    def worker(self, host: str, port: int) -> Worker | None:
        """The worker for ``host:port`` (compared without case), if there is one."""
        host = host.lower()
        return next((w for w in self.workers if w.host.lower() == host and w.port == port), None)


@dataclass(frozen=True)
class Op:
    """One member of one balancer made to be: ``route``, ``loadfactor`` and exactly
    ``flags`` among ``MANAGED`` set; ``add``: added first if the balancer has no such worker."""

    balancer: str
    url: str
    route: str
    loadfactor: int
    flags: frozenset[str] = field(default=frozenset())
    add: bool = False

    def describe(self) -> str:
        """``balancer://web member r1 (http://10.0.0.1:80)``, for messages."""
        return f"{PREFIX}{self.balancer} member {self.route or '(no route)'} ({self.url})"


def endpoint(url: str) -> tuple[str, int]:
    """``http://host:port[/...]`` as (host, port); IPv6 hosts without brackets."""
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 80


def text_of(node: ET.Element, tag: str) -> str:
    found = node.find(NS + tag)
    return (found.text or "") if found is not None else ""


def parse_xml(text: str) -> dict[str, Balancer]:
    """The balancers of a ``?xml=1`` page, by pool name.

    :raises CommandError: not a balancer-manager XML page.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CommandError(f"balancer-manager did not answer XML ({exc}): {text[:80]!r}") from None
    if root.tag != NS + "manager":
        raise CommandError(f"balancer-manager answered an unknown XML document <{root.tag}>")
    out = {}
    for node in root.iter(NS + "balancer"):
        name = text_of(node, "name").removeprefix(PREFIX)
        workers = tuple(worker_of(w) for w in node.iter(NS + "worker"))
        out[name] = Balancer(name, text_of(node, "nonce"), workers)
    return out


def worker_of(node: ET.Element) -> Worker:
    port = text_of(node, "port")
    try:
        loadfactor = float(text_of(node, "loadfactor") or 0)
    except ValueError:
        loadfactor = 0.0
    return Worker(text_of(node, "name"), text_of(node, "hostname"), int(port) if port.isdigit() else 0,
                  text_of(node, "route"), loadfactor, text_of(node, "status"))


def fields(op: Op, nonce: str) -> dict[str, str]:
    """The form fields that make an existing worker what ``op`` says."""
    out = {"b": op.balancer, "w": op.url, "nonce": nonce, "w_wr": op.route, "w_lf": str(op.loadfactor)}
    out.update({f"w_status_{flag}": "1" if flag in op.flags else "0" for flag in MANAGED})
    return out


def disagreement(op: Op, worker: Worker | None) -> str | None:
    """What the read-back ``worker`` shows that ``op`` did not ask for, or None."""
    if worker is None:
        return ("could not be added (no spare member slot left: the balancer's growth is used up)"
                if op.add else "is not in the balancer")
    got = []
    if worker.route != op.route:
        got.append(f"route {worker.route!r}")
    if round(worker.loadfactor * 100) != op.loadfactor * 100:
        got.append(f"loadfactor {worker.loadfactor:g}")
    if worker.flags & frozenset(MANAGED) != op.flags:
        got.append(f"status {worker.status.strip()!r}")
    if not got:
        return None
    wanted = f"route {op.route!r}, loadfactor {op.loadfactor}, flags {''.join(sorted(op.flags)) or 'none'}"
    return f"reads {', '.join(got)} (wanted {wanted})"
