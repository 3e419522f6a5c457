"""Small builders shared by the unit tests."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "inventories" / "example.yml"
INVENTORIES = sorted((ROOT / "inventories").glob("*.yml"))


def bench_script(name: str):
    """``bench/<name>.py`` as a module (the bench scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_raw() -> dict:
    """The shipped example inventory as a fresh, mutable dict."""
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def minimal_raw(address: str = "127.0.0.1", port: int = 18080) -> dict:
    """One http listener, one pool, one member."""
    return {
        "listeners": {"web": {"address": address, "port": port, "default_pool": "app"}},
        "pools": {"app": {"members": [{"name": "app-1", "address": "127.0.0.1", "port": 8080}]}},
    }


def needs(marks):
    """Apply a list of marks (``requires_haproxy``) to one test function."""
    def decorate(func):
        for mark in marks:
            func = mark(func)
        return func
    return decorate
