"""lbctl.yml, read in one place (docs/configuration.md).

- ``loader``: the file, its top-level sections and the keys every target has;
- ``values``: the value validators (durations, ports, addresses, names, paths, ...);
- ``secrets``: the one reader of a secret from ``*_env`` or ``*_file``;
- ``consul``: ``source.consul`` and ``election``; ``watch``: ``watch``, ``guard``, ``metrics``;
- each target kind's own keys are read by its settings parser,
  ``lbctl/targets/<kind>/settings.py`` (``parse``), found through lbctl.kinds.

PyYAML is imported only by ``load``, when a file is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lbctl.config.loader import (TARGET_KEYS, Config, Probe, Target, from_raw, load, options,  # noqa: F401
                                     target, without_config)

LOADER_NAMES = frozenset({"TARGET_KEYS", "Config", "Probe", "Target", "from_raw", "load", "options", "target",
                          "without_config"})
SUBMODULES = frozenset({"loader", "values", "secrets", "consul", "watch"})


def __getattr__(name: str):
    """The loader's names, loaded on first use: ``lbctl.config.values`` (which each
    kind's settings parser uses) can be imported alone, without the loader and
    every kind (``lbctl render`` without a config)."""
    if name in LOADER_NAMES:
        from lbctl.config import loader

        return getattr(loader, name)
    if name in SUBMODULES:  # ``config.values`` without importing it first, as before
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
