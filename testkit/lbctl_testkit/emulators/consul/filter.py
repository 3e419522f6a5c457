"""A go-bexpr subset: the ``?filter=`` expressions Consul evaluates server-side.

Grammar (``hashicorp/go-bexpr`` ``grammar.peg``)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | "(" expr ")" | match
    match   := selector ("==" | "!=") value
             | selector "is" ["not"] "empty"
             | selector ["not"] ("contains" | "matches") value
             | value ["not"] "in" selector
    selector:= ident ("." ident | "[" string "]")*
    value   := string | `raw` | number | selector (taken as its text)

Selectors are checked against a schema when the filter is compiled, like Consul's
field configurations: an unknown field is an error, map keys (``Meta.env`` or
``Meta["env"]``) are free, a missing map key reads as ``""``.  A selector that
crosses a list of objects (``Checks.Status``) matches if *any* element matches;
negated operators are the negation of the positive one.  Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# Field types.
STR, INT, BOOL, FLOAT, LIST_STR, MAP_STR = "str", "int", "bool", "float", "list", "map"


class FilterError(ValueError):
    """The expression does not parse or does not fit the schema."""


Predicate = Callable[[Any], bool]

# ---------------------------------------------------------------- schemas
_WEIGHTS = {"Passing": INT, "Warning": INT}
NODE = {"ID": STR, "Node": STR, "Address": STR, "Datacenter": STR,
        "TaggedAddresses": MAP_STR, "Meta": MAP_STR, "PeerName": STR}
SERVICE = {"Kind": STR, "ID": STR, "Service": STR, "Tags": LIST_STR, "Address": STR,
           "Meta": MAP_STR, "Port": INT, "Weights": _WEIGHTS, "EnableTagOverride": BOOL,
           "PeerName": STR, "SocketPath": STR,
           "Proxy": {"DestinationServiceName": STR, "DestinationServiceID": STR,
                     "LocalServiceAddress": STR, "LocalServicePort": INT, "Mode": STR},
           "Connect": {"Native": BOOL}}
CHECK = {"Node": STR, "CheckID": STR, "Name": STR, "Status": STR, "Notes": STR,
         "Output": STR, "ServiceID": STR, "ServiceName": STR, "ServiceTags": LIST_STR,
         "Type": STR, "Interval": STR, "Timeout": STR, "ExposedPort": INT, "PeerName": STR}
HEALTH_ENTRY = {"Node": NODE, "Service": SERVICE, "Checks": [CHECK]}
SERVICE_NODE = {"ID": STR, "Node": STR, "Address": STR, "Datacenter": STR,
                "TaggedAddresses": MAP_STR, "NodeMeta": MAP_STR, "ServiceKind": STR,
                "ServiceID": STR, "ServiceName": STR, "ServiceTags": LIST_STR,
                "ServiceAddress": STR, "ServiceMeta": MAP_STR, "ServicePort": INT,
                "ServiceWeights": _WEIGHTS, "ServiceEnableTagOverride": BOOL,
                "ServicePeerName": STR}
AGENT_SERVICE = {"Kind": STR, "ID": STR, "Service": STR, "Tags": LIST_STR, "Meta": MAP_STR,
                 "Port": INT, "Address": STR, "Weights": _WEIGHTS,
                 "EnableTagOverride": BOOL, "Datacenter": STR}

# ---------------------------------------------------------------- tokenizer
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<op>==|!=)
  | (?P<punct>[()\[\].,])
  | (?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?![A-Za-z0-9_]))
  | (?P<ident>[A-Za-z][A-Za-z0-9_/]*)
  | (?P<dq>"(?:[^"\\]|\\.)*")
  | (?P<bq>`[^`]*`)
""", re.VERBOSE | re.DOTALL)
_KEYWORDS = {"and", "or", "not", "is", "empty", "in", "contains", "matches"}
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'"}


@dataclass
class _Tok:
    kind: str  # op punct num ident kw str eof
    text: str
    pos: int
    value: str = ""


def _unquote(raw: str, pos: int) -> str:
    body = raw[1:-1]
    if raw[0] == "`" or "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise FilterError(f"1:{pos + 1} ({pos}): invalid syntax")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise FilterError(f"1:{pos + 1} ({pos}): invalid syntax")
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "\"`":
                raise FilterError(f"1:{pos + 1} ({pos}): Unterminated string literal")
            raise FilterError(f"1:{pos + 1} ({pos}): no match found, unexpected {text[pos]!r}")
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "ident" and raw in _KEYWORDS:
            toks.append(_Tok("kw", raw, pos))
        elif kind in ("dq", "bq"):
            toks.append(_Tok("str", raw, pos, _unquote(raw, pos)))
        elif kind != "ws":
            toks.append(_Tok(kind, raw, pos))
        pos = m.end()
    toks.append(_Tok("eof", "", len(text)))
    return toks


# ---------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str, schema: dict) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.schema = schema

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, what: str) -> FilterError:
        tok = self.peek()
        found = repr(tok.text) if tok.kind != "eof" else "end of input"
        return FilterError(f"1:{tok.pos + 1} ({tok.pos}): no match found, expected {what}, got {found}")

    def is_kw(self, word: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "kw" and tok.text == word

    def parse(self) -> Predicate:
        if self.peek().kind == "eof":
            raise self.fail("an expression")
        pred = self.parse_or()
        if self.peek().kind != "eof":
            raise self.fail('"and", "or" or end of input')
        return pred

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda d, ps=tuple(parts): any(p(d) for p in ps))

    def parse_and(self) -> Predicate:
        parts = [self.parse_not()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else (lambda d, ps=tuple(parts): all(p(d) for p in ps))

    def parse_not(self) -> Predicate:
        if self.is_kw("not"):
            self.take()
            inner = self.parse_not()
            return lambda d: not inner(d)
        if self.peek().text == "(" and self.peek().kind == "punct":
            self.take()
            inner = self.parse_or()
            if self.peek().text != ")":
                raise FilterError(f"1:{self.peek().pos + 1} ({self.peek().pos}): Unmatched parentheses")
            self.take()
            return inner
        return self.parse_match()

    def parse_selector(self) -> list[str]:
        tok = self.take()
        if tok.kind != "ident":
            self.i -= 1
            raise self.fail("a selector")
        path = [tok.text]
        while True:
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text == "." and self.peek(1).kind in ("ident", "kw", "num"):
                self.take()
                path.append(self.take().text)
            elif nxt.kind == "punct" and nxt.text == "[":
                self.take()
                key = self.take()
                if key.kind != "str":
                    self.i -= 1
                    raise FilterError(f"1:{key.pos + 1} ({key.pos}): Invalid index")
                if self.peek().text != "]":
                    raise FilterError(f"1:{self.peek().pos + 1} ({self.peek().pos}): Unclosed index expression")
                self.take()
                path.append(key.value)
            else:
                return path

    def parse_value(self) -> str:
        tok = self.peek()
        if tok.kind == "str":
            return self.take().value
        if tok.kind == "num":
            return self.take().text
        if tok.kind == "ident":
            return ".".join(self.parse_selector())
        raise self.fail("a value")

    def parse_match(self) -> Predicate:
        tok = self.peek()
        if tok.kind in ("str", "num"):
            value = self.parse_value()
            return self.finish_in(value)
        if tok.kind != "ident":
            raise self.fail("a selector or a value")
        start = self.i
        path = self.parse_selector()
        if self.is_kw("in") or (self.is_kw("not") and self.is_kw("in", 1)):
            self.i = start
            return self.finish_in(self.parse_value())
        nxt = self.peek()
        if nxt.kind == "op":
            self.take()
            op = "==" if nxt.text == "==" else "!="
            return _compile(path, "==", self.parse_value(), self.schema, negate=op == "!=")
        negate = False
        if self.is_kw("is"):
            self.take()
            if self.is_kw("not"):
                self.take()
                negate = True
            if not self.is_kw("empty"):
                raise self.fail('"empty"')
            self.take()
            return _compile(path, "empty", None, self.schema, negate=negate)
        if self.is_kw("not"):
            self.take()
            negate = True
        if self.is_kw("contains"):
            self.take()
            return _compile(path, "in", self.parse_value(), self.schema, negate=negate)
        if self.is_kw("matches"):
            self.take()
            return _compile(path, "matches", self.parse_value(), self.schema, negate=negate)
        raise self.fail('"==", "!=", "is", "contains", "matches", "in" or "not"')

    def finish_in(self, value: str) -> Predicate:
        negate = False
        if self.is_kw("not"):
            self.take()
            negate = True
        if not self.is_kw("in"):
            raise self.fail('"in" or "not in"')
        self.take()
        if self.peek().kind != "ident":
            raise FilterError(f"1:{self.peek().pos + 1} ({self.peek().pos}): Invalid selector")
        path = self.parse_selector()
        return _compile(path, "in", value, self.schema, negate=negate)


# ---------------------------------------------------------------- compile/evaluate
_OPS = {STR: {"==", "empty", "in", "matches"}, INT: {"=="}, FLOAT: {"=="}, BOOL: {"=="},
        LIST_STR: {"empty", "in", "matches"}, MAP_STR: {"empty", "in"}}
_OP_NAMES = {"==": "Equal", "empty": "Is Empty", "in": "In", "matches": "Matches"}


def _resolve_type(path: list[str], schema: dict) -> tuple[Any, list[tuple[str, str]]]:
    """Walk the schema; return the leaf type and the access steps."""
    steps: list[tuple[str, str]] = []  # (kind, name): kind in field|key|each
    typ: Any = schema
    for i, part in enumerate(path):
        if isinstance(typ, list):  # list of structs: implicit "any"
            steps.append(("each", ""))
            typ = typ[0]
        if isinstance(typ, dict):
            if part not in typ:
                raise FilterError(f"Selector {'.'.join(path[:i + 1])!r} is not valid".replace("'", '"'))
            steps.append(("field", part))
            typ = typ[part]
        elif typ == MAP_STR:
            steps.append(("key", part))
            typ = STR
        else:
            raise FilterError(f"Selector {'.'.join(path[:i + 1])!r} is not valid".replace("'", '"'))
    return typ, steps


def _values(datum: Any, steps: list[tuple[str, str]]) -> list[Any]:
    vals = [datum]
    for kind, name in steps:
        nxt: list[Any] = []
        for v in vals:
            if kind == "each":
                nxt.extend(v or ())
            elif kind == "field":
                nxt.append(v.get(name) if isinstance(v, dict) else None)
            else:
                nxt.append((v or {}).get(name, ""))
        vals = nxt
    return vals


def _coerce(raw: str, typ: str, sel: str) -> Any:
    try:
        if typ == INT:
            return int(raw)
        if typ == FLOAT:
            return float(raw)
        if typ == BOOL:
            from .durations import parse_bool
            return parse_bool(raw)
    except ValueError as exc:
        raise FilterError(f"Failed to coerce value {raw!r} for selector {sel!r}: {exc}") from None
    return raw


def _compile(path: list[str], op: str, raw: str | None, schema: dict, *, negate: bool) -> Predicate:
    sel = ".".join(path)
    typ, steps = _resolve_type(path, schema)
    leaf = typ if isinstance(typ, str) else ("struct_list" if isinstance(typ, list) else "struct")
    if leaf in ("struct_list",) and op == "empty":
        test: Callable[[Any], bool] = lambda v: not v
    elif leaf not in _OPS or op not in _OPS[leaf]:
        raise FilterError(f'Invalid match operator "{_OP_NAMES[op]}" for selector "{sel}"')
    elif op == "empty":
        test = lambda v: not v
    elif op == "==":
        want = _coerce(raw or "", leaf, sel)
        test = lambda v: (v if v is not None else _zero(leaf)) == want
    elif op == "matches":
        try:
            rx = re.compile(raw or "")
        except re.error as exc:
            raise FilterError(f"Failed to compile regular expression {raw!r}: {exc}") from None
        if leaf == LIST_STR:
            test = lambda v: any(rx.search(x) for x in (v or ()))
        else:
            test = lambda v: rx.search(v or "") is not None
    else:  # in / contains
        if leaf == STR:
            test = lambda v: (raw or "") in (v or "")
        else:  # list (element) or map (key)
            test = lambda v: v is not None and raw in v

    if any(kind == "each" for kind, _ in steps):
        def pred(datum: Any) -> bool:
            return any(test(v) for v in _values(datum, steps)) != negate
        return pred

    def pred_one(datum: Any) -> bool:  # no list crossed: one value, no intermediate lists
        v = datum
        for kind, name in steps:
            if kind == "field":
                v = v.get(name) if isinstance(v, dict) else None
            else:
                v = (v or {}).get(name, "")
        return test(v) != negate

    return pred_one


def _zero(typ: str) -> Any:
    return {INT: 0, FLOAT: 0.0, BOOL: False}.get(typ, "")


def compile_filter(expression: str, schema: dict) -> Predicate:
    """Compile *expression* against *schema*; raise ``FilterError`` on any problem."""
    return _Parser(expression, schema).parse()
