"""Fixtures shared by the Consul emulator's tests: the emulator (its real agent's limits
on, seeded by the module's ``EMULATOR_SEED``) and a py-consul client for it."""

import consul
import pytest

from lbctl_testkit.emulators.consul import ConsulEmulator


@pytest.fixture
def emu(request):
    with ConsulEmulator(seed=getattr(request.module, "EMULATOR_SEED", 7)) as e:
        yield e


@pytest.fixture
def cc(emu):
    return consul.Consul(host="127.0.0.1", port=emu.port)
