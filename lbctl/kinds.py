"""The load-balancer kinds lbctl drives: one registry (docs/architecture.md#the-registry).

Each kind lives in its own package, ``lbctl/targets/<kind>/``.  This module is
pure data: it imports no kind.  A kind's modules are imported when asked for,
by name, so that reading lbctl.yml loads only each kind's settings parser,
``lbctl render`` only the pure rendering modules, and ``lbctl --help`` nothing.
Adding a kind: a package, its templates, one line in ``KINDS``, its tests, its
docs page (docs/architecture.md#adding-a-kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

from lbctl.errors import ConfigError

CONFIG_FORMAT = "config"  # a file kind's rendered configuration file


@dataclass(frozen=True)
class Kind:
    """What lbctl knows of a kind before it loads any of its code.

    ``file``: lbctl writes a configuration file, checks it with the kind's own
    binary (``<package>.binary``), swaps and reloads it; otherwise the kind is a
    device driven through its API.  ``formats``: what ``lbctl render --format``
    prints for it, the first by default; ``config`` is rendered by its ``view``
    module from its templates, any other by the module of that name (its
    ``text`` and ``validate``).
    """

    name: str
    target_class: str  # in <package>.target
    file: bool
    formats: tuple[str, ...]
    config_name: str = ""  # what its configuration file is called (validate without a config checks one so named)
    program: str = ""  # its binary's name when it is not the kind's (the default of ``binary``)

    @property
    def binary(self) -> str:
        """The default of a target's ``binary``: the program's name, found on PATH."""
        return self.program or self.name

    @property
    def package(self) -> str:
        return f"lbctl.targets.{self.name}"

    def module(self, name: str) -> ModuleType:
        """One of the kind's modules (``settings``, ``view``, ``binary``, ``target``...), imported now."""
        return import_module(f"{self.package}.{name}")

    def settings(self) -> ModuleType:
        """Its settings parser (pure): ``KEYS``, ``SHARED``, ``parse`` and ``options``."""
        return self.module("settings")

    def target(self) -> type:
        """Its target class: the control code (processes, sockets, device API)."""
        return getattr(self.module("target"), self.target_class)


KINDS = {kind.name: kind for kind in (
    Kind("haproxy", "HAProxyTarget", True, (CONFIG_FORMAT,), "haproxy.cfg"),
    Kind("nginx", "NginxTarget", True, (CONFIG_FORMAT,), "nginx.conf"),
    Kind("apache", "ApacheTarget", True, (CONFIG_FORMAT,), "httpd.conf", "apache2"),
    Kind("bigip", "BigIPTarget", False, ("as3",)),
    Kind("dns", "DnsTarget", False, ("records",)),
    Kind("keepalived", "KeepalivedTarget", True, (CONFIG_FORMAT,), "keepalived.conf"),
)}
FILE_KINDS = tuple(name for name, kind in KINDS.items() if kind.file)


def get(name: str, what: str = "kind") -> Kind:
    """:raises ConfigError: ``name`` is no kind."""
    if name not in KINDS:
        raise ConfigError(f"{what} must be one of {', '.join(KINDS)} (got {name!r})")
    return KINDS[name]


def named(names: tuple[str, ...] | list[str]) -> str:
    """``a, b or c``: for help texts and errors."""
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
