"""Rendered output against files checked in under tests/golden/expected.

To accept a deliberate change: UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py,
then review the diff of tests/golden/expected before committing it.
"""

import os
from pathlib import Path

import pytest

from lbctl import config, inventory
from lbctl.render import render
from tests.helpers import EXAMPLE

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = [
    (EXAMPLE, "haproxy", {}, "example.haproxy.cfg"),
    (EXAMPLE, "nginx", {}, "example.nginx.conf"),
    (GOLDEN / "inputs" / "edge-cases.yml", "haproxy", {}, "edge-cases.haproxy.cfg"),
    (GOLDEN / "inputs" / "edge-cases.yml", "nginx", {"temp_dir": "/var/lib/lbctl/nginx"}, "edge-cases.nginx.conf"),
    (GOLDEN / "inputs" / "apache.yml", "apache", {}, "apache.httpd.conf"),
    (GOLDEN / "inputs" / "apache.yml", "apache", {"layout": "include"}, "apache-include.conf"),
]


@pytest.mark.parametrize("source,kind,options,expected", CASES, ids=[c[3] for c in CASES])
def test_golden(source, kind, options, expected):
    text = render(inventory.load(source), kind, config.options(kind, options))
    path = GOLDEN / "expected" / expected
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


def test_include_layout_is_the_http_part_of_the_main_layout():
    desired = inventory.load(EXAMPLE)
    desired = type(desired)(tuple(x for x in desired.listeners if x.mode == "http"),
                            tuple(p for p in desired.pools if p.name != "db"))
    main = render(desired, "nginx", config.options("nginx"))
    part = render(desired, "nginx", config.options("nginx", {"layout": "include"}))
    assert part.strip() and "\n".join("    " + line if line else line for line in part.splitlines()) in main
