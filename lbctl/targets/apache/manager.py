"""A client of Apache's balancer-manager (mod_proxy_balancer) over HTTP.

Its guards and traps (httpd 2.4 ``modules/proxy/mod_proxy_balancer.c``; measured on
2.4.71, see docs/apache.md#runtime-changes):

- every request with parameters, even ``GET ?xml=1``, is ignored unless its
  ``Referer`` names the same host as the request (``AH10187``): every request
  here sends ``Referer: http://<manager>/balancer-manager``;
- a change applies only with the balancer's nonce (read from ``?xml=1``);
- a POST body is read up to 1 KiB only: longer bodies are refused here;
- a change Apache does not make still answers 200 (or 400): only reading the state
  back tells, so every change is read back and compared (the last POST asks for
  ``xml``: its answer is the state after the change).

lbctl never adds members through it (docs/apache.md#runtime-changes): Apache adds
a member to the balancer of the VirtualHost serving balancer-manager only.
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

    def read(self) -> dict[str, Balancer]:
        """Every balancer and its workers, by balancer name.

        :raises CommandError: unreachable, or not a balancer-manager.
        """
        return balancers.parse_xml(self.request("GET", params={"xml": "1"}).text)

    def post(self, form: dict[str, str]) -> str:
        """Send ``form``; the page Apache answers (``?xml=1``'s when the form has ``xml``).

        :raises CommandError: the form is longer than Apache reads, or no answer.
        """
        body = urlencode(form)
        if len(body) > BODY_MAX:
            raise CommandError(f"{self.where()}: a change to balancer://{form.get('b')} is {len(body)} bytes, "
                               f"over the {BODY_MAX} Apache reads")
        return self.request("POST", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}).text

    def apply(self, ops: Iterable[Op], state: dict[str, Balancer] | None = None) -> dict[str, Balancer]:
        """Make every op so (each an existing worker), then read the state back; the
        state read back.  ``state``: a fresh ``read()`` (for the nonces and the
        workers' names as Apache spells them), or None to read it first.

        :raises CommandError: unreachable, or the read-back disagrees (one line
            naming the balancer and member).
        """
        ops = list(ops)
        state = state if state is not None else self.read()
        page = None
        for op in ops:
            nonce = self.nonce(state, op)
            current = state[op.balancer].worker(*endpoint(op.url))
            url = current.url if current is not None else op.url
            # xml: Apache answers with the state after the change (the read-back, with no request more)
            page = self.post({**balancers.fields(Op(op.balancer, url, op.route, op.loadfactor, op.flags), nonce),
                              "xml": "1"})
        after = balancers.parse_xml(page) if page is not None else state
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
        """Set one member (``flags`` among D, N, H, S) and confirm it."""
        self.apply([Op(balancer, url, route, loadfactor, frozenset(flags))])


def check(where: str, ops: list[Op], state: dict[str, Balancer]) -> None:
    """:raises CommandError: the first op the read-back ``state`` disagrees with."""
    for op in ops:
        balancer = state.get(op.balancer)
        worker = balancer.worker(*endpoint(op.url)) if balancer is not None else None
        wrong = balancers.disagreement(op, worker)
        if wrong:
            raise CommandError(f"{where}: {op.describe()} {wrong}")
