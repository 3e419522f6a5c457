"""Backends filled in from patterns that the template itself produced.  Pure.

Rendering 100,000 server lines through Jinja2 costs about a microsecond of
Python each.  Instead, the backend template is rendered for a *probe*: a pool
with the settings and mode of the real one, whose name and whose members'
names, addresses, ports and weights are holes — values that print as unique
markers and refuse everything else (comparing, hashing, measuring, slicing,
arithmetic, truth).  Members also have a shape, taken from the real member: its
state and whether its address is IPv6 (the one question the ``endpoint``
filter asks).  The probe's text, with 1, 2 and 3 members, must split into a
header, the same line per member (but for the markers) and a footer; those
become patterns, filled in with each pool's name and each member's values (a
generated f-string per line, no Jinja2 call).

So the template stays the only source of every line, overridden with
``--templates`` or not.  Templates that use ``loop``, namespaces, includes or
imports (a line could then depend on more than its own member) are rendered
by Jinja2 as they always were, and so is any pool whose probe fails: a hole
used as more than text, a split that does not hold, any error (Jinja2 then
reports it).
"""

from __future__ import annotations

from itertools import chain, compress
from operator import attrgetter, ne
from typing import TYPE_CHECKING, Callable, Sequence

from lbctl import model

if TYPE_CHECKING:
    import jinja2

MARK = "\x00"  # in no template's text and no validated value
POOL_FIELDS = tuple(f for f in model.Pool.__struct_fields__ if f not in ("name", "members"))
HOLES = ("name", "address", "port", "weight")  # a member's fields that are printed as they are
pool_fields, get_state, get_address = attrgetter(*POOL_FIELDS), attrgetter("state"), attrgetter("address")
get_name, get_members = attrgetter("name"), attrgetter("members")
# Words without which a template has no include, import, extends, ``loop`` or namespace (see ``eligible``).
UNSAFE_WORDS = ("include", "import", "extends", "loop", "namespace")


class Opaque(Exception):
    """The template did something with a hole other than print it."""


def refuse(*_args, **_kwargs):
    raise Opaque


KEEP = {"__new__", "__init__", "__getattribute__", "__setattr__", "__class__", "__dict__", "__doc__",
        "__init_subclass__", "__subclasshook__", "__str__", "__format__", "__sizeof__", "__dir__"}


def seal(cls: type, base: type) -> None:
    """Make every method ``cls`` inherits from ``base`` refuse, but what Python
    needs to build and print the object (``KEEP``) and what ``cls`` defines."""
    for name in dir(base):
        if name not in KEEP and name not in vars(cls):
            setattr(cls, name, refuse)


class TextHole(str):
    """A string that may only be printed: ``str()``, or formatting with no spec."""

    def __format__(self, spec: str) -> str:
        if spec:
            raise Opaque
        return str.__str__(self)


class AddressHole(TextHole):
    """An address hole that can answer whether it is IPv6 (``":" in address``)."""

    ipv6 = False

    def __contains__(self, item) -> bool:
        if type(item) is str and item == ":":
            return self.ipv6
        raise Opaque


class NumberHole(int):
    """An integer that may only be printed.  Its value differs from one probe member
    to the next, so a template that uses it as a number (``%d``) fails the split."""

    text = ""

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        if spec:
            raise Opaque
        return self.text


seal(TextHole, str)
seal(AddressHole, str)
seal(NumberHole, int)


def text_hole(name: str) -> TextHole:
    return TextHole(f"{MARK}{name}{MARK}")


def address_hole(name: str, ipv6: bool) -> AddressHole:
    hole = AddressHole(f"{MARK}{name}{MARK}")
    hole.ipv6 = ipv6
    return hole


def number_hole(name: str, value: int) -> NumberHole:
    hole = NumberHole(value)
    hole.text = f"{MARK}{name}{MARK}"
    return hole


class Probe:
    """A probe pool or member: the given attributes, and ``Opaque`` for any other."""

    def __init__(self, **attrs) -> None:
        self.__dict__.update(attrs)

    def __getattr__(self, name: str):
        raise Opaque

    __str__ = __repr__ = __format__ = __bool__ = __eq__ = __hash__ = __iter__ = __len__ = __getitem__ = refuse


class Members:
    """A probe pool's members: iterable once (by the template's member loop), and
    not measurable; true, as only pools with members are probed."""

    def __init__(self, members: list) -> None:
        self.members = members

    def __iter__(self):
        members, self.members = self.members, None
        if members is None:
            raise Opaque
        return iter(members)

    def __bool__(self) -> bool:
        return True

    __len__ = __getitem__ = __contains__ = __reversed__ = refuse


class Modes:
    """``modes`` for a probe: only the probe pool's own mode can be looked up."""

    def __init__(self, hole: TextHole, mode: str) -> None:
        self.hole, self.mode = hole, mode

    def __getitem__(self, key):
        if key is self.hole:
            return self.mode
        raise Opaque


def eligible(env: jinja2.Environment, name: str) -> bool:
    """Whether template ``name`` can be probed: no ``loop``, namespace, include or import.
    A template without any of ``UNSAFE_WORDS`` has none (no need to parse it)."""
    import jinja2  # here: a render from saved patterns (lbctl/render/warm.py) has no template
    from jinja2 import nodes

    try:
        source = env.loader.get_source(env, name)[0]
        if not any(word in source for word in UNSAFE_WORDS):
            return True
        tree = env.parse(source)
    except jinja2.TemplateError:
        return False
    if next(tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends, nodes.NSRef)), None):
        return False
    return not any(n.name == "loop" for n in tree.find_all(nodes.Name))


def probe(template: jinja2.Template, pool: model.Pool, mode: str, options, shape: tuple[str, bool], count: int) -> str:
    """The template's text for a probe shaped like ``pool`` with ``count`` members of ``shape``."""
    name = text_hole("pool")
    members = [Probe(name=text_hole(f"{i}.name"), address=address_hole(f"{i}.address", shape[1]),
                     port=number_hole(f"{i}.port", 40001 + i), weight=number_hole(f"{i}.weight", 101 + i),
                     state=shape[0]) for i in range(count)]
    p = Probe(name=name, members=Members(members), **{f: getattr(pool, f) for f in POOL_FIELDS})
    return template.render(p=p, modes=Modes(name, mode), opts=options)


def renumbered(text: str, src: int, dst: int) -> str:
    for field in HOLES:
        text = text.replace(f"{MARK}{src}.{field}{MARK}", f"{MARK}{dst}.{field}{MARK}")
    return text


def split(texts: list[str]) -> tuple[str, str, str] | None:
    """(header, member 0's line, footer) such that ``texts[n]`` is the header, the
    line renumbered for members 0..n, and the footer; None if there is none."""
    one, two = texts[0], texts[1]
    width = len(two) - len(one)
    if width < 0:
        return None
    common = 0
    while common < len(one) and one[common] == two[common]:
        common += 1
    for end in range(common, width - 1, -1):  # where member 0's line ends
        head, line, foot = one[:end - width], one[end - width:end], one[end:]
        if all(text == head + "".join(renumbered(line, 0, k) for k in range(n + 1)) + foot
               for n, text in enumerate(texts)):
            return head, line, foot
    return None


class Pattern:
    """Text with holes, as the constant pieces between them and what fills each
    hole: "pool" (the pool's name) or a member's field (one of ``HOLES``).  (Plain
    classes here, not dataclasses: making one costs about a millisecond at import.)"""

    __slots__ = ("pieces", "fields")

    def __init__(self, pieces: tuple[str, ...], fields: tuple[str, ...]) -> None:
        self.pieces, self.fields = pieces, fields


def pattern(text: str, member: bool) -> Pattern | None:
    """``text`` as a ``Pattern``; None if it holds a stray marker, or a member's hole
    where it may not (``member``: member 0's holes are allowed)."""
    parts = text.split(MARK)
    allowed = {"pool", *(f"0.{f}" for f in HOLES if member)}
    if len(parts) % 2 == 0 or not set(parts[1::2]) <= allowed:
        return None
    return Pattern(tuple(parts[0::2]), tuple(f.removeprefix("0.") for f in parts[1::2]))


def line_maker(line: Pattern, head: Pattern, foot: Pattern) -> tuple[Callable, Callable]:
    """Two functions, one f-string per member (Python's fastest way to join pieces):
    ``lines(pool name, members)``, the members' lines, and ``backends(pools)``, the
    whole text of each pool (header, lines, footer) joined.  Only names of ``HOLES``
    reach the generated source; the pieces are closure values, so no template text
    is compiled."""
    holes = ["pool_name" if f == "pool" else f"m.{f}" for f in line.fields]
    assert all(h == "pool_name" or h[2:] in HOLES for h in holes)
    body = "".join(f"{{c{i}}}" * bool(piece) + (f"{{{holes[i]}}}" if i < len(holes) else "")
                   for i, piece in enumerate(line.pieces))
    source = (f"def make(head, foot, {', '.join(f'c{i}' for i in range(len(line.pieces)))}):\n"
              f"    def lines(pool_name, members):\n"
              f"        return ''.join([f'{body}' for m in members])\n"
              f"    def backends(pools):\n"
              f"        out = []\n"
              f"        add = out.append\n"
              f"        for p in pools:\n"
              f"            pool_name = p.name\n"
              f"            add(pool_name.join(head))\n"
              f"            out += [f'{body}' for m in p.members]\n"
              f"            add(pool_name.join(foot))\n"
              f"        return ''.join(out)\n"
              f"    return lines, backends\n")
    scope: dict = {}
    exec(compile(source, "<lbctl line pattern>", "exec"), scope)
    return scope["make"](head.pieces, foot.pieces, *line.pieces)


def shape_of(template: jinja2.Template, pool: model.Pool, mode: str, options, member_shape: tuple[str, bool]
             ) -> Shape | None:
    """The patterns of ``pool``'s shape with members of ``member_shape``; None if
    the template cannot be split into patterns (see the module's docstring)."""
    try:
        parts = split([probe(template, pool, mode, options, member_shape, n) for n in (1, 2, 3)])
    except Exception:  # Opaque, or anything else the template did with a probe: Jinja2 decides
        return None
    if parts is None:
        return None
    head, line, foot = pattern(parts[0], False), pattern(parts[1], True), pattern(parts[2], False)
    if head is None or line is None or foot is None:
        return None
    return made_shape(head, line, foot)


def made_shape(head: Pattern, line: Pattern, foot: Pattern) -> Shape:
    """The ``Shape`` of these patterns (as probed, or as saved by lbctl/render/warm.py)."""
    colons = sum(piece.count(":") for piece in head.pieces + foot.pieces)
    return Shape(head.pieces, foot.pieces, *line_maker(line, head, foot), colons,
                 sum(p.count(":") for p in line.pieces), line)


class Shape:
    """A pool shape with one member shape: the header's and footer's pieces, to be
    joined with the pool's name (their only hole), and the generated makers."""

    __slots__ = ("head", "foot", "lines", "backends", "colons", "line_colons", "line")

    def __init__(self, head: tuple[str, ...], foot: tuple[str, ...], lines: Callable[[str, Sequence[model.Member]], str],
                 backends: Callable[[Sequence[model.Pool]], str], colons: int, line_colons: int, line: Pattern) -> None:
        self.head, self.foot = head, foot
        self.lines = lines
        self.backends = backends  # every pool's whole text (see ``Backends.joined``)
        self.colons = colons  # the ':' in a pool's header and footer (see ``Backends.joined``)
        self.line_colons = line_colons  # and in a member's line
        self.line = line  # what ``lines`` and ``backends`` were made from (kept by lbctl/render/warm.py)


def backends(env: jinja2.Environment, name: str, options) -> Backends:
    """The ``Backends`` of template ``name`` (as Jinja2 has it now) and ``options``,
    kept between renders so that ``lbctl watch`` probes each shape once."""
    template = env.get_template(name)
    key = (id(template), id(options))
    hit = _made.get(key)
    if hit is None or hit.template is not template or hit.options is not options:
        if len(_made) >= 16:
            _made.clear()
        hit = _made[key] = Backends(env, template, name, options)
    return hit


class Backends:
    """Backend texts from patterns, one set per pool shape, built on first use."""

    def __init__(self, env: jinja2.Environment, template: jinja2.Template, name: str, options) -> None:
        self.template = template
        self.options = options
        self.usable = eligible(env, name)
        self.shapes: dict[tuple, Shape | None] = {}

    def text(self, pool: model.Pool, mode: str) -> str | None:
        """``pool``'s backend, or None: Jinja2 renders it."""
        members = pool.members
        if not self.usable or not members:
            return None
        fields = pool_fields(pool)
        states = set(map(get_state, members))
        if len(states) == 1 and ":" not in "".join(map(get_address, members)):
            shape = self.shape(mode, fields, pool, (states.pop(), False))
            if shape is None:
                return None
            name = pool.name
            return name.join(shape.head) + shape.lines(name, members) + name.join(shape.foot)
        shapes = [self.shape(mode, fields, pool, (m.state, ":" in m.address)) for m in members]
        if None in shapes or len({(s.head, s.foot) for s in shapes}) != 1:
            return None  # the header or footer depends on the members' states: Jinja2
        name = pool.name
        return name.join(shapes[0].head) + "".join(s.lines(name, (m,)) for s, m in zip(shapes, members)) \
            + name.join(shapes[0].foot)

    def joined(self, pools: Sequence[model.Pool], modes: dict, one: Callable[[model.Pool], str]) -> str:
        """The backends of ``pools``, in order, as ``one(pool)`` gives each: a run of
        pools of one shape, whose members all have one state, at once, without a
        Python call per pool; any other pool by ``one``.  For ``lbctl render`` of
        10,000 pools, whose per-pool checks cost as much as their lines."""
        if not self.usable:
            return "".join(map(one, pools))
        out = []
        for run, (mode, fields) in runs(pools, modes):
            text = self.run_text(run, mode, fields)
            out.append("".join(map(one, run)) if text is None else text)
        return "".join(out)

    def run_text(self, run: Sequence[model.Pool], mode: str, fields: tuple) -> str | None:
        """The backends of pools of one mode and settings, or None if the run has a pool
        without members, members of more than one state, or an address with ':'."""
        lists = list(map(get_members, run))
        states = set(map(get_state, chain.from_iterable(lists)))
        if len(states) != 1 or not all(lists):
            return None
        shape = self.shape(mode, fields, run[0], (states.pop(), False))
        if shape is None:
            return None
        text = shape.backends(run)
        # No value printed in a hole holds ':' (so no address is IPv6) if the text has
        # only the pieces' own (a validated name, port or weight has none).
        if text.count(":") != len(run) * shape.colons + sum(map(len, lists)) * shape.line_colons:
            return None
        return text

    def shape(self, mode: str, fields: tuple, pool: model.Pool, member_shape: tuple[str, bool]) -> Shape | None:
        key = (mode, member_shape, fields)
        found = self.shapes.get(key, self)
        if found is self:  # not probed yet
            if len(self.shapes) >= 10_000:  # pool settings that keep changing, in a long watch
                self.shapes.clear()
            found = self.shapes[key] = self.probed(key, pool)
        return found

    def probed(self, key: tuple, pool: model.Pool) -> Shape | None:
        """The shape of ``key`` (mode, member shape, settings) as the template gives it for ``pool``."""
        return shape_of(self.template, pool, key[0], self.options, key[1])


def runs(pools: Sequence[model.Pool], modes: dict) -> list[tuple[Sequence[model.Pool], tuple]]:
    """``pools`` cut into runs of consecutive pools of one mode and the same settings,
    each with its (mode, settings); compared in C, where pools share settings objects."""
    keys = list(zip(map(modes.__getitem__, map(get_name, pools)), map(pool_fields, pools)))
    cuts = [0, *(i + 1 for i in compress(range(len(keys)), map(ne, keys, keys[1:]))), len(keys)]
    return [(pools[start:end], keys[start]) for start, end in zip(cuts, cuts[1:]) if end > start]


_made: dict[tuple, Backends] = {}
