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

- a member added (``b_nwrkr``) starts disabled, goes only into the balancer copy of
  the VirtualHost serving the request, and fails (400, or 200) once the balancer's
  ``growth`` slots are used: it is added, then set, then read back like the rest.

Each listener VirtualHost serves its own balancer-manager (vhosts.py): a Manager is
one of them, reached on loopback with its ServerName as Host.  It keeps one
keep-alive session and the last state it read (nonces last as long as the
generation): a change reads the page only when it knows none, or once more when
the read-back disagrees (a graceful restart in between gives new nonces).
"""

from __future__ import annotations

import http.client
import ssl
from typing import Iterable
from urllib.parse import urlencode

from lbctl.errors import CommandError
from lbctl.targets.apache import balancers
from lbctl.targets.apache.balancers import Balancer, Op, endpoint

BODY_MAX = 1024  # bytes of a POST body mod_proxy_balancer reads


class NoSpareSlot(CommandError):
    """Apache did not add a member: the balancer's ``growth`` slots are used up."""


class Manager:
    """balancer-manager at ``address`` (``HOST:PORT`` on this machine) and ``path``, in
    the VirtualHost named ``host`` (None: the address's first), over one keep-alive
    connection (http.client: a runtime change's few milliseconds are mostly this client's)."""

    def __init__(self, address: str, timeout: float = 5.0, host: str | None = None,
                 path: str = "/balancer-manager", tls: bool = False) -> None:
        self.address, self.path, self.tls, self.timeout, self.host = address, path, tls, timeout, host
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{address}{path}"
        # same-site (the Host's name), or Apache ignores the parameters (AH10187)
        self.headers = {"Host": host or address, "Referer": f"{scheme}://{host or address}{path}"}
        self.connection: http.client.HTTPConnection | None = None
        self.state: dict[str, Balancer] | None = None  # the last state read, with its nonces

    def where(self) -> str:
        return f"apache balancer-manager {self.url}" + (f" (VirtualHost {self.host})" if self.host else "")

    def connect(self) -> http.client.HTTPConnection:
        host, _, port = self.address.rpartition(":")
        if not self.tls:
            return http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)
        context = ssl.create_default_context()
        context.check_hostname = False  # this machine's own listener, on loopback: its certificate names others
        context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(host.strip("[]"), int(port), timeout=self.timeout, context=context)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method: str, query: str = "", body: str | None = None) -> str:
        """One request, the page answered; once more on a new connection when the kept one
        was closed (Apache's KeepAliveTimeout: every change sets absolute values, so a
        repeated one is harmless).  :raises CommandError: no answer, or neither 200 nor 400."""
        headers = {**self.headers, **({"Content-Type": "application/x-www-form-urlencoded"} if body else {})}
        for attempt in (1, 2):
            fresh = self.connection is None
            self.connection = self.connection or self.connect()
            try:
                self.connection.request(method, self.path + query, body, headers)
                answer = self.connection.getresponse()
                page = answer.read().decode(errors="replace")
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if fresh or attempt == 2:
                    raise CommandError(f"{self.where()} does not answer: {type(exc).__name__}") from None
        if answer.status not in (200, 400):  # 400: a refused change, told by the read-back
            raise CommandError(f"{self.where()} answered HTTP {answer.status}")
        return page

    def read(self) -> dict[str, Balancer]:
        """Every balancer and its workers, by balancer name.

        :raises CommandError: unreachable, or not a balancer-manager.
        """
        self.state = balancers.parse_xml(self.request("GET", "?xml=1"))
        return self.state

    def current(self) -> dict[str, Balancer]:
        """The state last read (or read back), else read now."""
        return self.state if self.state is not None else self.read()

    def post(self, form: dict[str, str]) -> str:
        """Send ``form``; the page Apache answers (``?xml=1``'s when the form has ``xml``).

        :raises CommandError: the form is longer than Apache reads, or no answer.
        """
        body = urlencode(form)
        if len(body) > BODY_MAX:
            raise CommandError(f"{self.where()}: a change to balancer://{form.get('b')} is {len(body)} bytes, "
                               f"over the {BODY_MAX} Apache reads")
        return self.request("POST", body=body)

    def apply(self, ops: Iterable[Op], state: dict[str, Balancer] | None = None) -> dict[str, Balancer]:
        """Make every op so (adding the workers ops mark ``add``), then read the state back;
        the state read back.  ``state``: a fresh ``read()`` (for the nonces and the
        workers' names as Apache spells them), or None for the one known (``current``),
        read once more if the read-back disagrees with a change made on it.

        :raises CommandError: unreachable, or the read-back disagrees (one line
            naming the balancer and member).
        """
        ops = list(ops)
        if state is not None or self.state is None:
            return self.change(ops, state if state is not None else self.read())
        try:
            return self.change(ops, self.state)
        except NoSpareSlot:
            raise
        except CommandError:  # a restart lbctl did not make, say: new nonces
            return self.change(ops, self.read())

    def change(self, ops: list[Op], state: dict[str, Balancer]) -> dict[str, Balancer]:
        page = None
        self.state = None  # until read back
        for op in ops:
            nonce = self.nonce(state, op)
            current = state[op.balancer].worker(*endpoint(op.url))
            if op.add and current is None:
                self.post({"b": op.balancer, "nonce": nonce, "b_nwrkr": op.url, "b_wyes": "1"})
            url = current.url if current is not None else op.url
            # xml: Apache answers with the state after the change (the read-back, with no request more)
            page = self.post({**balancers.fields(Op(op.balancer, url, op.route, op.loadfactor, op.flags), nonce),
                              "xml": "1"})
        after = balancers.parse_xml(page) if page is not None else state
        check(self.where(), ops, after)
        self.state = after
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
            raise (NoSpareSlot if op.add and worker is None else CommandError)(f"{where}: {op.describe()} {wrong}")
