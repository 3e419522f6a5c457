"""Compressed answers: Consul gzips every answer of its HTTP API for a client that
accepts gzip (requests does, by default), and so does the emulator.  lbctl asks for
plain answers: compressing the 15 MB check feed on every change, and inflating it,
would cost the agent and lbctl more CPU than the change itself."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import requests

from lbctl.config import consul as consul_config
from lbctl.discovery import checks
from lbctl.discovery.consul import Client
from lbctl_testkit.emulators.consul import ConsulEmulator

pytestmark = pytest.mark.integration
CHECKS = 5  # the three instances' and each node's serfHealth (the emulator's own node too)


@pytest.fixture
def emu():
    with ConsulEmulator(default_wait=1, max_wait=1) as e:
        e.add_node("node-1", "10.0.0.1")
        for k in range(3):
            e.add_service("web", node="node-1", service_id=f"web-{k}", address="10.1.0.1", port=8000 + k,
                          tags=["edge"])
        yield e


def test_the_emulator_gzips_for_a_client_that_accepts_it(emu):
    url = f"http://127.0.0.1:{emu.port}/v1/health/state/any"
    r = requests.get(url, timeout=10)  # requests: Accept-Encoding: gzip, deflate
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Vary"] == "Accept-Encoding" and len(r.json()) == CHECKS
    raw = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True).raw.read()
    assert gzip.decompress(raw) == r.content
    for plain in ("identity", "gzip;q=0", "deflate, br"):
        r = requests.get(url, headers={"Accept-Encoding": plain}, timeout=10)
        assert "Content-Encoding" not in r.headers and len(r.json()) == CHECKS, plain
    assert emu.gzipped[url.split(str(emu.port))[1]] == 2


def test_lbctl_asks_for_plain_answers(emu):
    settings = consul_config.consul({"address": f"127.0.0.1:{emu.port}", "tag": "edge", "wait": "1s"}, Path("."))
    client = Client(settings)
    try:
        index, reading = client.checks()
        assert index > 0 and len(checks.Book(reading).rows) == CHECKS
        assert len(client.health("web")[1]) == 3 and "web" in client.services()[1]
        assert client.checks_index() > 0
    finally:
        client.close()
    assert emu.request_count("/v1/") >= 4 and not emu.gzipped
