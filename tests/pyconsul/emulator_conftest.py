"""py-consul's own test fixtures, served by lbctl's Consul emulator instead of a container.

``run.py`` copies this file as ``conftest.py`` into the extracted py-consul sdist (in
place of its own, which starts ``hashicorp/consul`` containers with Docker).  Each test
gets a fresh emulator, as py-consul's suite gets a fresh ``consul agent -dev``, with the
emulator's defaults: real Consul limits, the connection cap included.
"""

from __future__ import annotations

import collections
import os

import pytest

from lbctl_testkit.emulators.consul import ConsulEmulator

ConsulInstance = collections.namedtuple("ConsulInstance", ["container", "port", "version"])

_skipped: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _unset_consul_token():
    os.environ.pop("CONSUL_HTTP_TOKEN", None)


PORT = int(os.environ["LBCTL_PYCONSUL_PORT"])  # set by run.py (8500, see there)


@pytest.fixture
def consul_instance():
    # Like py-consul's container config: script checks enabled (Consul's default refuses them).
    with ConsulEmulator(port=PORT, enable_script_checks=True) as emu:
        version = emu.store.agent_self()["Config"]["Version"]
        yield ConsulInstance(None, emu.port, version)


@pytest.fixture
def consul_port(consul_instance):
    return consul_instance.port, consul_instance.version


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """A skipped test would hide a gap: the run fails instead."""
    if _skipped and session.exitstatus == 0:
        print(f"\nskipped tests are not allowed here: {', '.join(_skipped)}")
        session.exitstatus = 1
