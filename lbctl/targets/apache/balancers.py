"""What Apache's balancer-manager shows and what lbctl asks of it.  Pure.

The running state comes from two pages of the same handler (``mod_proxy_balancer.c``,
``balancer_display_page``, httpd 2.4):

- ``?xml=1``: per balancer its name and nonce, per worker its URL (the worker's
  name), route, load factor, status words and the connection settings the worker
  has (``timeout``, ``connectiontimeout``, ``max`` ... : printed only when set);
- the HTML page: per balancer ``MaxMembers`` as ``N [M Used]`` (members plus
  ``growth``: how many more members fit) and, with mod_proxy_hcheck loaded, each
  worker's health-check method, interval, passes, fails and URI, which the XML
  does not show.

Status words (``ap_proxy_parse_wstatus``, measured on 2.4.71): ``Init``, then
``Dis`` (disabled), ``Drn`` (draining), ``Stby`` (hot standby), ``Stop``
(stopped), ``Err`` (in error), ``HcFl`` (health check failed), ``Spar`` (hot
spare), ``Ign`` (ignore errors), and ``Ok`` when the worker is usable.  The
form fields that set them are ``w_status_<letter>`` (``FLAGS``).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from lbctl.errors import CommandError

PREFIX = "balancer://"
NS = "{http://httpd.apache.org}"
FLAGS = {"Dis": "D", "Drn": "N", "Stby": "H", "Stop": "S", "Err": "E", "HcFl": "C", "Spar": "R", "Ign": "I"}
MANAGED = "DNHS"  # the flags lbctl sets and clears; the others (errors, health) are Apache's own
# What a worker shows that changes while it serves, or that lbctl sets: the rest are its
# connection settings, fixed when the worker is defined (``fixed``).
LIVE_FIELDS = {"name", "scheme", "hostname", "port", "status", "error_time", "retries", "lbstatus", "loadfactor",
               "transferred", "read", "elected", "route", "redirect", "busy", "lbset"}
# Connection settings printed only when the configuration sets them: a worker added through
# balancer-manager has none of them (it copies only the manager's server-wide ProxyTimeout).
OPTIONAL_FIELDS = ("timeout", "connectiontimeout", "acquire", "recv_buffer_size", "io_buffer_size", "keepalive",
                   "disablereuse", "retry", "flushpackets", "flushwait", "ping")
# Of those, what lbctl's template gives every member but balancer-manager cannot: a member
# added at runtime has Apache's defaults for them until the next graceful restart
# (docs/apache-runtime.md#what-an-added-member-lacks).
ADDED_DEFAULTS = ("timeout", "connectiontimeout", "retry")


@dataclass(frozen=True)
class Health:
    """A worker's health check as the HTML page shows it (mod_proxy_hcheck)."""

    method: str  # NONE, TCP, GET, HEAD, OPTIONS ...
    interval_ms: int
    passes: int
    fails: int
    uri: str
    expr: str


@dataclass(frozen=True)
class Worker:
    url: str  # the worker's name: its URL as the configuration (or the add) gave it
    host: str
    port: int
    route: str
    loadfactor: float
    status: str  # as shown, e.g. "Init Dis "
    fixed: tuple[tuple[str, str], ...] = ()  # connection settings (not LIVE_FIELDS), in page order
    health: Health | None = None  # None when the page shows no health checks

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
    max_members: int | None = None  # members plus growth; None when the HTML page was not read

    @property
    def free(self) -> int:
        """How many more members fit (adds beyond this fail: ``AH10164``)."""
        return max(0, (self.max_members or 0) - len(self.workers))

    def worker(self, host: str, port: int) -> Worker | None:
        """The worker for ``host:port`` (compared without case), if there is one."""
        host = host.lower()
        return next((w for w in self.workers if w.host.lower() == host and w.port == port), None)


@dataclass(frozen=True)
class Op:
    """One member of one balancer made to be: ``route``, ``loadfactor`` and exactly
    ``flags`` among ``MANAGED`` set.  ``add``: the worker does not exist yet (added,
    then set, since Apache adds members disabled); ``health``: the check to give it."""

    balancer: str
    url: str
    route: str
    loadfactor: int
    flags: frozenset[str] = field(default=frozenset())
    add: bool = False
    health: Health | None = None

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
    fixed = tuple((child.tag.removeprefix(NS), child.text or "") for child in node
                  if child.tag.removeprefix(NS) not in LIVE_FIELDS)
    port = text_of(node, "port")
    try:
        loadfactor = float(text_of(node, "loadfactor") or 0)
    except ValueError:
        loadfactor = 0.0
    return Worker(text_of(node, "name"), text_of(node, "hostname"), int(port) if port.isdigit() else 0,
                  text_of(node, "route"), loadfactor, text_of(node, "status"), fixed)


SECTION = re.compile(r"<h3>LoadBalancer Status for <a [^>]*>balancer://([^<]*)</a>")
MAX_MEMBERS = re.compile(r"<td>(\d+) \[(\d+) Used\]</td>")
ROW = re.compile(r"<tr>\s*<td><a href=\"[^\"]*\">(?:<i>)?([^<]*)(?:</i>)?</a></td>(.*?)</tr>", re.S)
CELL = re.compile(r"<td>(.*?)(?=</td>|$)", re.S)
HC_PAIR = re.compile(r"(\d+)")


def parse_html(text: str) -> dict[str, tuple[int, dict[str, Health]]]:
    """Per balancer (pool name) of the HTML page: its ``MaxMembers`` and the health
    check of each worker (by URL), when the page shows health checks."""
    out: dict[str, tuple[int, dict[str, Health]]] = {}
    starts = [(m.start(), html.unescape(m.group(1))) for m in SECTION.finditer(text)]
    for i, (start, name) in enumerate(starts):
        section = text[start:starts[i + 1][0] if i + 1 < len(starts) else len(text)]
        size = MAX_MEMBERS.search(section)
        checks = {}
        for row in ROW.finditer(section):
            cells = [html.unescape(c).strip() for c in CELL.findall(row.group(2))]
            if len(cells) >= 16:  # Route .. From, then the six health-check columns
                checks[html.unescape(row.group(1))] = health_of(cells[10:16])
        out[name] = (int(size.group(1)) if size else 0, checks)
    return out


def health_of(cells: list[str]) -> Health:
    """The six health-check cells: method, ``<n>ms``, ``<passes> (<count>)``, ``<fails> (<count>)``, uri, expr."""
    def number(cell: str) -> int:
        found = HC_PAIR.match(cell)
        return int(found.group(1)) if found else 0
    return Health(cells[0], number(cells[1]), number(cells[2]), number(cells[3]), cells[4], cells[5])


def merge(balancers: dict[str, Balancer], page: dict[str, tuple[int, dict[str, Health]]]) -> dict[str, Balancer]:
    """The XML balancers with the HTML page's ``MaxMembers`` and health checks."""
    out = {}
    for name, balancer in balancers.items():
        size, checks = page.get(name, (None, {}))
        workers = tuple(Worker(w.url, w.host, w.port, w.route, w.loadfactor, w.status, w.fixed, checks.get(w.url))
                        for w in balancer.workers)
        out[name] = Balancer(name, balancer.nonce, workers, size)
    return out


def fields(op: Op, nonce: str) -> dict[str, str]:
    """The form fields that make an existing worker what ``op`` says."""
    out = {"b": op.balancer, "w": op.url, "nonce": nonce, "w_wr": op.route, "w_lf": str(op.loadfactor)}
    out.update({f"w_status_{flag}": "1" if flag in op.flags else "0" for flag in MANAGED})
    if op.health is not None:
        h = op.health
        out.update({"w_hm": h.method, "w_hi": str(h.interval_ms), "w_hp": str(h.passes), "w_hf": str(h.fails),
                    "w_hu": h.uri, "w_he": h.expr})
    return out


def disagreement(op: Op, worker: Worker | None) -> str | None:
    """What the read-back ``worker`` shows that ``op`` did not ask for, or None."""
    if worker is None:
        return "is not in the balancer" + (" (no free slot: growth used up?)" if op.add else "")
    got = []
    if worker.route != op.route:
        got.append(f"route {worker.route!r}")
    if round(worker.loadfactor * 100) != op.loadfactor * 100:
        got.append(f"loadfactor {worker.loadfactor:g}")
    if worker.flags & frozenset(MANAGED) != op.flags:
        got.append(f"status {worker.status.strip()!r}")
    if op.health is not None and worker.health is not None and same_check(worker.health) != same_check(op.health):
        got.append(f"health check {worker.health.method} {worker.health.uri}")
    if not got:
        return None
    wanted = f"route {op.route!r}, loadfactor {op.loadfactor}, flags {''.join(sorted(op.flags)) or 'none'}"
    return f"reads {', '.join(got)} (wanted {wanted})"


def same_check(h: Health) -> tuple:
    return (h.method.upper(), h.interval_ms, h.passes, h.fails, h.uri, h.expr)
