"""A client of Apache's balancer-manager (mod_proxy_balancer) over HTTP.

Its guards and traps (httpd 2.4 ``modules/proxy/mod_proxy_balancer.c``; measured on
2.4.71, see docs/apache.md#runtime-changes):

- every request with parameters, even ``GET ?xml=1``, is ignored unless its
  ``Referer`` names the same host as the request (``AH10187``): every request
  here sends ``Referer: http://<manager>/balancer-manager``;
- a change applies only with the balancer's nonce (read from ``?xml=1``);
- a POST body is read up to 1 KiB only: longer bodies are refused here;
- adding a member works only while the balancer has room (``growth``); a failed
  add logs ``AH10164`` and answers 400 or even 200: only reading the state back
  tells, so every change is read back and compared;
- a new member starts disabled: it is added, then set (route, load factor,
  status, health check) in a second request;
- members cannot be deleted, only disabled.
"""

from __future__ import annotations

from typing import Iterable
from urllib.parse import urlencode

import requests

from lbctl.errors import CommandError
from lbctl.targets.apache import balancers
from lbctl.targets.apache.balancers import Balancer, Op, endpoint

BODY_MAX = 1024  # bytes of a POST body mod_proxy_balancer reads


class Manager:
    """balancer-manager at ``address`` (``HOST:PORT``, the loopback-only VirtualHost
    serving ``/balancer-manager``)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.url = f"http://{address}/balancer-manager"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Referer"] = self.url  # same-site, or Apache ignores the parameters

    def where(self) -> str:
        return f"apache balancer-manager {self.url}"

    def request(self, method: str, **kwargs) -> requests.Response:
        """One request; :raises CommandError: no answer, or neither 200 nor 400."""
        try:
            answer = self.session.request(method, self.url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise CommandError(f"{self.where()} does not answer: {type(exc).__name__}") from None
        if answer.status_code not in (200, 400):  # 400: a refused change, told by the read-back
            raise CommandError(f"{self.where()} answered HTTP {answer.status_code}")
        return answer

    def read(self, health: bool = True) -> dict[str, Balancer]:
        """Every balancer and its workers, by pool name; with ``health`` also the
        HTML page's ``MaxMembers`` and health checks (two requests).

        :raises CommandError: unreachable, or not a balancer-manager.
        """
        found = balancers.parse_xml(self.request("GET", params={"xml": "1"}).text)
        if not health:
            return found
        return balancers.merge(found, balancers.parse_html(self.request("GET").text))

    def post(self, form: dict[str, str]) -> None:
        """:raises CommandError: the form is longer than Apache reads, or no answer."""
        body = urlencode(form)
        if len(body) > BODY_MAX:
            raise CommandError(f"{self.where()}: a change to balancer://{form.get('b')} is {len(body)} bytes, "
                               f"over the {BODY_MAX} Apache reads")
        self.request("POST", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})

    def apply(self, ops: Iterable[Op], state: dict[str, Balancer] | None = None) -> dict[str, Balancer]:
        """Make every op so, then read the state back; the state read back.

        ``state``: a fresh ``read()`` (for the nonces), or None to read it first.
        Ops that add a worker are added first, then every op is set.

        :raises CommandError: unreachable, or the read-back disagrees (one line
            naming the balancer and member).
        """
        ops = list(ops)
        state = state if state is not None else self.read(health=False)
        nonces = {op.balancer: self.nonce(state, op) for op in ops}
        adds = [op for op in ops if op.add]
        for op in adds:
            self.post({"b": op.balancer, "nonce": nonces[op.balancer], "b_nwrkr": op.url, "b_wyes": "1"})
        if adds:  # each add confirmed before its worker is set (the set of a missing worker is ignored)
            added = self.read(health=False)
            for op in adds:
                host, port = endpoint(op.url)
                if added.get(op.balancer) is None or added[op.balancer].worker(host, port) is None:
                    raise CommandError(f"{self.where()}: {op.describe()} was not added (growth used up?)")
            state = added
        for op in ops:
            current = state[op.balancer].worker(*endpoint(op.url))
            url = current.url if current is not None else op.url  # the worker's own name, as Apache spells it
            self.post(balancers.fields(Op(op.balancer, url, op.route, op.loadfactor, op.flags, health=op.health),
                                       nonces[op.balancer]))
        after = self.read(health=any(op.health is not None for op in ops))
        check(self.where(), ops, after)
        return after

    def nonce(self, state: dict[str, Balancer], op: Op) -> str:
        balancer = state.get(op.balancer)
        if balancer is None:
            raise CommandError(f"{self.where()}: no balancer://{op.balancer} (is it defined outside "
                               "<Location>, and seen by the manager's VirtualHost?)")
        if not balancer.nonce:
            raise CommandError(f"{self.where()}: balancer://{op.balancer} shows no nonce")
        return balancer.nonce

    def set(self, balancer: str, url: str, route: str, loadfactor: int, flags: str = "") -> None:
        """Set one existing member (``flags`` among D, N, H, S) and confirm it."""
        self.apply([Op(balancer, url, route, loadfactor, frozenset(flags))])

    def add(self, balancer: str, url: str, route: str, loadfactor: int, flags: str = "") -> None:
        """Add one member (enabled unless ``flags`` say otherwise) and confirm it."""
        self.apply([Op(balancer, url, route, loadfactor, frozenset(flags), add=True)])


def check(where: str, ops: list[Op], state: dict[str, Balancer]) -> None:
    """:raises CommandError: the first op the read-back ``state`` disagrees with."""
    for op in ops:
        balancer = state.get(op.balancer)
        worker = balancer.worker(*endpoint(op.url)) if balancer is not None else None
        wrong = balancers.disagreement(op, worker) or (unlike(op, balancer, ops) if op.add else None)
        if wrong:
            raise CommandError(f"{where}: {op.describe()} {wrong}")


def unlike(op: Op, balancer: Balancer, ops: list[Op]) -> str | None:
    """How an added worker's connection settings differ from those of a member the
    configuration defined (not added by ``ops``), or None.  Those it cannot have
    (``balancers.ADDED_DEFAULTS``) are left out: the runtime planning accepted them."""
    added = {endpoint(o.url) for o in ops if o.add and o.balancer == op.balancer}
    worker = balancer.worker(*endpoint(op.url))
    sibling = next((w for w in balancer.workers if (w.host, w.port) not in added and w.route), None)
    if worker is None or sibling is None:
        return None
    mine, theirs = ([(k, v) for k, v in w.fixed if k not in balancers.ADDED_DEFAULTS] for w in (worker, sibling))
    if mine == theirs:
        return None
    theirs = ", ".join(f"{k} {v}" for k, v in theirs if (k, v) not in mine)
    return f"was added without the settings its configured members have ({theirs or 'fewer settings'})"
