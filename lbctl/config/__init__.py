"""lbctl.yml, read in one place (docs/configuration.md).

- ``loader``: the file, its top-level sections and the keys every target has;
- ``values``: the value validators (durations, ports, addresses, names, paths, ...);
- ``secrets``: the one reader of a secret from ``*_env`` or ``*_file``;
- ``consul``: ``source.consul`` and ``election``; ``watch``: ``watch``, ``guard``, ``metrics``;
- ``haproxy``, ``nginx``, ``bigip``: each target kind's own keys, from the target's
  mapping to its settings (``parse``), standing alone.

PyYAML is imported only by ``load``, when a file is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lbctl.config.loader import (FILE_KINDS, KINDS, TARGET_KEYS, Config, Probe, Target, from_raw,  # noqa: F401
                                     load, options, target)

LOADER_NAMES = frozenset({"FILE_KINDS", "KINDS", "TARGET_KEYS", "Config", "Probe", "Target", "from_raw", "load",
                          "options", "target"})
SUBMODULES = frozenset({"loader", "values", "secrets", "consul", "watch", "haproxy", "nginx", "bigip"})


def __getattr__(name: str):
    """The loader's names, loaded on first use: a kind's settings module
    (``lbctl.config.haproxy``) can be imported alone, without the loader and
    every other kind (``lbctl render`` without a config)."""
    if name in LOADER_NAMES:
        from lbctl.config import loader

        return getattr(loader, name)
    if name in SUBMODULES:  # ``config.nginx`` without importing it first, as before
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
