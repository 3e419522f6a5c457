"""iControl REST transactions (docs/upstream.md#big-ip-transactions), pure: no I/O, no locking.

Non-GET requests carrying ``X-F5-REST-Coordination-Id`` are queued as commands;
``PATCH /mgmt/tm/transaction/<id> {"state":"VALIDATING"}`` runs them in
``evalOrder`` inside one undo journal, so a failing command leaves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, NoReturn

from . import names
from .errors import API_REST, API_TRANSACTION, IcrError

Result = tuple[int, Any]


@dataclass
class Command:
    command_id: int
    method: str
    path: str                       # after /mgmt/, no trailing slash
    params: list[tuple[str, str]]
    body: Any
    eval_order: int = 0


@dataclass
class Transaction:
    trans_id: int
    touched: float
    timeout: int = 120
    state: str = "STARTED"
    validate_only: bool = False
    failure: str = ""
    commands: list[Command] = field(default_factory=list)
    next_id: int = 1


class Transactions:
    def __init__(self, clock: Callable[[], float], version: str, timeout: int = 120) -> None:
        self.clock = clock
        self.version = version
        self.timeout = timeout
        self.items: dict[int, Transaction] = {}
        self._last_id = 0
        self.fail_next_commit: str | None = None
        self.commits = 0

    # -- lookups --------------------------------------------------------------------------
    def _purge(self) -> None:
        now = self.clock()
        for tid in [t for t, x in self.items.items() if now - x.touched > x.timeout]:
            del self.items[tid]

    def get(self, tid: Any) -> Transaction:
        self._purge()
        try:
            txn = self.items[int(tid)]
        except (KeyError, ValueError):
            # [unverified] text
            raise IcrError(404, f"Transaction {tid} does not exist.", API_REST) from None
        txn.touched = self.clock()
        return txn

    def create(self) -> Transaction:
        self._purge()
        tid = max(int(self.clock() * 1_000_000), self._last_id + 1)
        self._last_id = tid
        txn = Transaction(tid, self.clock(), self.timeout)
        self.items[tid] = txn
        return txn

    def queue(self, tid: Any, method: str, path: str, params: list[tuple[str, str]],
              body: Any) -> dict[str, Any]:
        txn = self.get(tid)
        if txn.state != "STARTED":
            # [unverified] text
            raise IcrError(400, f"Transaction {txn.trans_id} is in state {txn.state} and "
                                f"cannot take more commands.", API_REST)
        cmd = Command(txn.next_id, method, path.rstrip("/"), params, body,
                      len(txn.commands) + 1)
        txn.next_id += 1
        txn.commands.append(cmd)
        return self.render_command(txn, cmd)

    # -- rendering -------------------------------------------------------------------------
    def render(self, txn: Transaction) -> dict[str, Any]:
        return {"transId": txn.trans_id, "state": txn.state, "timeoutSeconds": txn.timeout,
                "asyncExecution": False, "validateOnly": txn.validate_only,
                "executionTimeout": 300, "executionTime": 0, "failureReason": txn.failure,
                "kind": "tm:transactionstate",
                "selfLink": names.link(f"tm/transaction/{txn.trans_id}", self.version)}

    def render_command(self, txn: Transaction, cmd: Command) -> dict[str, Any]:
        return {"method": cmd.method, "uri": f"https://localhost/mgmt/{cmd.path}",
                "body": cmd.body, "evalOrder": cmd.eval_order, "commandId": cmd.command_id,
                "kind": "tm:transaction:commandsstate",
                "selfLink": names.link(f"tm/transaction/{txn.trans_id}/commands/"
                                       f"{cmd.command_id}", self.version)}

    # -- REST: /mgmt/tm/transaction[/<id>[/commands[/<n>]]] --------------------------------
    def handle(self, method: str, rest: str, body: Any,
               execute: Callable[[Command], None],
               atomic: Callable[[bool], ContextManager[None]]) -> Result:
        parts = [p for p in rest.split("/") if p]
        if not parts:
            if method == "GET":
                self._purge()
                out: dict[str, Any] = {"kind": "tm:transactioncollectionstate",
                                       "selfLink": names.link("tm/transaction", self.version)}
                if self.items:
                    out["items"] = [self.render(t) for t in self.items.values()]
                return 200, out
            if method == "POST":
                return 200, self.render(self.create())
            raise _bad_method(method)
        txn = self.get(parts[0])
        if len(parts) == 1:
            if method == "GET":
                return 200, self.render(txn)
            if method == "DELETE":
                del self.items[txn.trans_id]
                return 200, None
            if method == "PATCH":
                return self._patch(txn, body, execute, atomic)
            raise _bad_method(method)
        if parts[1] != "commands":
            raise IcrError(404, f"Public URI path not registered: /tm/transaction/{rest}",
                           framework=True)
        if len(parts) == 2:
            if method != "GET":
                raise _bad_method(method)
            out = {"kind": "tm:transaction:commandscollectionstate",
                   "selfLink": names.link(f"tm/transaction/{txn.trans_id}/commands",
                                          self.version)}
            if txn.commands:
                out["items"] = [self.render_command(txn, c) for c in txn.commands]
            return 200, out
        tail = rest.split("/commands/", 1)[1]
        cmd = next((c for c in txn.commands if len(parts) == 3 and str(c.command_id) == parts[2]),
                   None)
        if cmd is None:
            raise IcrError(400 if len(parts) > 3 or not parts[2].isdigit() else 404,
                           f"Found invalid command id {tail}", API_REST)
        if method == "GET":
            return 200, self.render_command(txn, cmd)
        if method == "DELETE":
            txn.commands.remove(cmd)
            self._renumber(txn)
            return 200, None
        if method == "PATCH" and isinstance(body, dict) and "evalOrder" in body:
            order = body["evalOrder"]
            if isinstance(order, bool) or not isinstance(order, int) or \
                    not 1 <= order <= len(txn.commands):
                raise IcrError(400, f'invalid property value "evalOrder":{order}', 26214401)
            txn.commands.remove(cmd)
            txn.commands.insert(order - 1, cmd)
            self._renumber(txn)
            return 200, self.render_command(txn, cmd)
        raise _bad_method(method)

    @staticmethod
    def _renumber(txn: Transaction) -> None:
        for i, c in enumerate(txn.commands, 1):
            c.eval_order = i

    def _patch(self, txn: Transaction, body: Any, execute: Callable[[Command], None],
               atomic: Callable[[bool], ContextManager[None]]) -> Result:
        if not isinstance(body, dict):
            raise IcrError(400, "Found invalid JSON body in the request.", API_REST)
        if "timeoutSeconds" in body and "state" not in body:
            txn.timeout = int(body["timeoutSeconds"])
            return 200, self.render(txn)
        if body.get("state") != "VALIDATING":
            raise IcrError(400, f'invalid property value "state":"{body.get("state")}"',
                           26214401)
        if txn.state != "STARTED":
            # [unverified] text
            raise IcrError(400, f"Transaction {txn.trans_id} is in state {txn.state}.",
                           API_REST)
        if not txn.commands:
            raise IcrError(404, "there is no command to commit in the transaction.", API_REST)
        validate_only = bool(body.get("validateOnly", False))
        txn.validate_only = validate_only
        self.commits += 1
        if self.fail_next_commit is not None:
            message, self.fail_next_commit = self.fail_next_commit, None
            self._failed(txn, IcrError(400, f"transaction failed:{message}", API_TRANSACTION))
        try:
            with atomic(validate_only):
                for cmd in sorted(txn.commands, key=lambda c: c.eval_order):
                    try:
                        execute(cmd)
                    except IcrError as err:
                        raise IcrError(400, f"transaction failed:{err.message}",
                                       API_TRANSACTION,
                                       error_stack=[f"command {cmd.command_id} (evalOrder "
                                                    f"{cmd.eval_order}): {cmd.method} "
                                                    f"/mgmt/{cmd.path}"]) from err
        except IcrError as err:
            self._failed(txn, err)
        txn.state = "COMPLETED"
        return 200, self.render(txn)

    @staticmethod
    def _failed(txn: Transaction, err: IcrError) -> NoReturn:
        txn.state = "FAILED"
        txn.failure = err.message
        raise err


def _bad_method(method: str) -> IcrError:
    # [unverified] text
    return IcrError(400, f"Method {method} is not supported on this URI.", API_REST,
                    framework=True)
