"""Patterns saved by one ``lbctl render`` for the next: a render whose templates,
options and listeners did not change needs no Jinja2 at all (not even its import,
about a tenth of the command's time at 100,000 servers).

What is saved is what Jinja2 gave for this very template text: each backend shape's
header, member line and footer (lbctl/render/lines.py), and the main template's text
around ``{{ backends }}``, the *frame*, for these listeners.  The file (named by
a checksum of it) holds, and is used only if it matches, everything else the text
depends on (``key``): the template files found (their path and bytes, in the search
path's order), the options, lbctl's version and the modules that probe, Jinja2's
installed files and Python's version.  Any change to one of them, other
listeners, a pool of a shape not saved (or one that Jinja2 renders on its own: no
members, mixed states, IPv6) make a render by Jinja2, which saves the patterns
again.  (Compared as text: cheaper than importing hashlib for a digest.)  The
newest ``KEEP`` files are kept.

A template is saved only if its text cannot depend on anything else: the frame's
template uses no variable but ``listeners``, ``opts`` and ``backends``, prints
``backends`` once and as it is, includes or imports nothing, and neither template
says ``random`` or ``lipsum``.  The files live in lbctl's cache directory (one of
the user's own, mode 0700: lbctl/render/paths.py); a file it cannot read, decode or
write means rendering with Jinja2, never an error.  Output is byte-identical
(tests/unit/test_warm_render.py).
"""

from __future__ import annotations

import binascii
import os
import sys
from pathlib import Path
from typing import Literal

import msgspec

from lbctl import __version__, model
from lbctl.render import lines
from lbctl.render.paths import cache_dir, search_path

FORMAT = 1  # of the saved file
FRAME_VARIABLES = {"listeners", "opts", "backends"}  # all the main template may use to be saved
CHANCE_WORDS = ("random", "lipsum")  # Jinja2's random filter and lipsum(): text that differs each time
BACKENDS_MARK = f"{lines.MARK}backends{lines.MARK}"
HERE = Path(__file__).parent
KEEP = 16  # saved files (other template directories, options or versions of lbctl)
Hole = Literal["pool", "name", "address", "port", "weight"]


class SavedShape(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One backend shape: its key (``shape_key``) and its patterns' pieces and holes."""

    key: str
    head: tuple[str, ...]
    line: tuple[str, ...]
    holes: tuple[Hole, ...]
    foot: tuple[str, ...]


class Saved(msgspec.Struct, forbid_unknown_fields=True):
    format: int
    key: str  # what the text depends on but the model (``key``)
    listeners: str  # the listeners the frame was rendered for, as JSON
    frame: tuple[str, str]
    shapes: list[SavedShape]


DECODER = msgspec.json.Decoder(Saved)


class Cold(Exception):
    """A pool that the saved patterns do not cover: Jinja2 renders the whole file."""


def cold(_pool: model.Pool) -> str:
    raise Cold


def shape_key(key: tuple) -> str:
    """``lines.Backends``'s key of a shape (mode, member shape, the pool's settings) as text."""
    return msgspec.json.encode(key).decode()


def listeners_text(listeners: tuple[model.Listener, ...]) -> str:
    return msgspec.json.encode(listeners).decode()


def jinja_init() -> str | None:
    """Where Jinja2 would be imported from (a package in ``sys.path``), without importing it."""
    return next((p for p in (os.path.join(d or ".", "jinja2", "__init__.py") for d in sys.path) if os.path.isfile(p)),
                None)


def stamp(path: str | None) -> str:
    """A file's size and modification time ("-" if there is none)."""
    try:
        found = os.stat(path) if path else None
    except OSError:
        found = None
    return f"{found.st_size}:{found.st_mtime_ns}" if found else "-"


def key(template_dir: str | None, names: tuple[str, ...], options, modules: tuple[str, ...]) -> str | None:
    """What the templates ``names`` render to depends on but the model; None if one
    of them is not found or cannot be read (Jinja2 then says so), or may print chance,
    or the options are not plain data."""
    dirs = search_path(template_dir)
    try:
        settings = msgspec.json.encode(options).decode()
    except (TypeError, msgspec.EncodeError):
        return None
    parts = [f"{FORMAT} {__version__} {sys.version}", stamp(jinja_init()), *map(stamp, modules), settings, *dirs]
    for name in names:
        path = next((p for p in (os.path.join(d, name) for d in dirs) if os.path.isfile(p)), None)
        try:
            source = Path(path).read_bytes().decode() if path else None  # bytes: as they are, newlines too
        except (OSError, ValueError):
            source = None
        if source is None or any(word in source for word in CHANCE_WORDS):
            return None
        parts += [path, source]
    return "\0".join(parts)


class SavedBackends(lines.Backends):
    """``lines.Backends`` over saved shapes: a shape not saved is ``Cold``."""

    def __init__(self, shapes: list[SavedShape]) -> None:
        self.usable = True
        self.shapes = {}
        self.saved = {s.key: s for s in shapes}

    def probed(self, key: tuple, pool: model.Pool) -> lines.Shape | None:
        s = self.saved.get(shape_key(key))
        if s is None or len(s.line) != len(s.holes) + 1:
            raise Cold
        return lines.made_shape(lines.Pattern(s.head, ("pool",) * (len(s.head) - 1)), lines.Pattern(s.line, s.holes),
                                lines.Pattern(s.foot, ("pool",) * (len(s.foot) - 1)))


class Reuse:
    """The saved patterns of templates ``names`` (the main one, then the backend's)
    with ``options``; ``modules``: the files of the kind's code that shape the text."""

    def __init__(self, template_dir: str | None, names: tuple[str, str], options, modules: tuple[str, ...]) -> None:
        self.names, self.options = names, options
        folder = cache_dir()
        self.key = key(template_dir, names, options, (lines.__file__, __file__, str(HERE / "environment.py"),
                                                      *modules)) if folder else None
        self.path = folder / f"render-{binascii.crc32(self.key.encode()):08x}.json" if self.key else None

    def text(self, desired: model.Desired) -> str | None:
        """The whole file from the saved patterns; None if they do not cover ``desired``."""
        if self.path is None:
            return None
        try:
            saved = DECODER.decode(self.path.read_bytes())
        except (OSError, msgspec.MsgspecError):
            return None
        if saved.format != FORMAT or saved.key != self.key or saved.listeners != listeners_text(desired.listeners):
            return None
        try:
            return SavedBackends(saved.shapes).joined(desired.pools, desired.pool_modes(), cold).join(saved.frame)
        except Cold:
            return None

    def keep(self, env, desired: model.Desired) -> None:
        """Save what Jinja2 gave for ``desired`` (the backend shapes it probed and the
        frame), if the templates allow it (see the module's docstring)."""
        patterns = lines.backends(env, self.names[1], self.options)
        frame = self.path and patterns.usable and frame_of(env, self.names[0], desired.listeners, self.options)
        if not frame:
            return
        shapes = [SavedShape(shape_key(k), s.head, s.line.pieces, s.line.fields, s.foot)
                  for k, s in patterns.shapes.items() if s is not None]
        data = msgspec.json.encode(Saved(FORMAT, self.key, listeners_text(desired.listeners), frame, shapes))
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(data)
            os.replace(temp, self.path)
            saved = sorted(self.path.parent.glob("render-*.json"), key=lambda p: (p.stat().st_mtime_ns, p == self.path))
            for old in saved[:-KEEP]:  # the oldest (this one is the newest, even in the same tick)
                old.unlink()
        except OSError:
            temp.unlink(missing_ok=True)


def frame_of(env, name: str, listeners: tuple[model.Listener, ...], options) -> tuple[str, str] | None:
    """The main template's text before and after ``{{ backends }}``; None if it uses
    more than ``FRAME_VARIABLES``, includes or imports, or prints ``backends`` other
    than once and as it is."""
    from jinja2 import meta, nodes

    try:
        tree = env.parse(env.loader.get_source(env, name)[0])
        if meta.find_undeclared_variables(tree) - FRAME_VARIABLES or next(
                tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)), None):
            return None
        text = env.get_template(name).render(listeners=listeners, backends=lines.text_hole("backends"), opts=options)
    except Exception:  # lines.Opaque, or anything else: not saved
        return None
    parts = text.split(BACKENDS_MARK)
    if len(parts) != 2 or any(lines.MARK in part for part in parts):
        return None
    return parts[0], parts[1]
