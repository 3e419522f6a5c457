"""A bigip target on a two-device sync-failover group of BIG-IP emulators, through
the real f5-sdk and requests: lbctl writes to the ACTIVE device, runs config-sync and
succeeds only when ``cm/sync-status`` says In Sync; a sync that fails or lags too
long fails the apply.  Time is a fake clock that the target's sleeps move on."""

from __future__ import annotations

import f5.bigip  # noqa: F401  (f5-sdk, which lbctl.targets.icontrol imports: missing, this file errors)
import pytest
import requests

from lbctl import config, deploy, guard, model
from lbctl.errors import LbctlError, Temporary
from lbctl.targets.bigip.target import BigIPTarget
from lbctl_testkit.emulators.bigip import BigIPEmulator

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated:DeprecationWarning")]
USER, PASSWORD, ENV = "admin", "s3cret", "LBCTL_TEST_BIGIP_PASSWORD"
SHOP = model.Desired(pools=(model.Pool("web", members=(model.Member("web-1", "10.0.0.1", 80),)),))
MORE = model.Desired(pools=(model.Pool("web", members=(model.Member("web-1", "10.0.0.1", 80),
                                                       model.Member("web-2", "10.0.0.2", 80))),))


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pair(clock, monkeypatch):
    monkeypatch.setenv(ENV, PASSWORD)
    with BigIPEmulator(USER, PASSWORD, clock=clock) as one, BigIPEmulator(USER, PASSWORD, clock=clock) as two:
        group = BigIPEmulator.pair(one, two, "dg1", clock)
        yield one, two, group
        assert one.internal_errors == [] and two.internal_errors == []


def target(pair, clock, tmp_path, **over) -> BigIPTarget:
    one, two, _ = pair
    bundle = tmp_path / "cas.pem"
    bundle.write_text(open(one.ca_path).read() + open(two.ca_path).read())
    raw = {"kind": "bigip", "devices": [f"127.0.0.1:{two.port}", f"127.0.0.1:{one.port}"], "username": USER,
           "password_env": ENV, "ca_bundle": str(bundle), "sync_group": "dg1", "backoff": "1s", "drain_time": 0,
           **over}
    settings = config.target("f5", raw, "targets.f5", tmp_path, tmp_path / "state")
    return BigIPTarget(settings, clock=clock, sleep=clock.sleep)


def pools(emu: BigIPEmulator) -> list[str]:
    answer = requests.get(f"{emu.url}/mgmt/tm/ltm/pool/", auth=(USER, PASSWORD), verify=emu.ca_path, timeout=10)
    return sorted(p["name"] for p in answer.json().get("items", []))


def sync_status(emu: BigIPEmulator) -> str:
    body = requests.get(f"{emu.url}/mgmt/tm/cm/sync-status", auth=(USER, PASSWORD), verify=emu.ca_path,
                        timeout=10).json()
    return next(iter(body["entries"].values()))["nestedStats"]["entries"]["status"]["description"]


def test_the_active_device_is_written_and_the_group_synced(pair, clock, tmp_path):
    one, two, group = pair
    outcome = deploy.deploy(target(pair, clock, tmp_path), SHOP)
    assert outcome.result == "applied"
    # the standby is only asked who is active
    assert [r.path for r in two.requests if r.method != "GET" and "authn/login" not in r.path] == []
    assert one.device.syncs == ["dg1"] and pools(one) == pools(two) == ["web"]
    assert sync_status(one) == sync_status(two) == "In Sync"


def test_a_change_on_one_device_is_pending_until_synced_and_both_changed_is_a_conflict(pair):
    one, two, group = pair
    requests.post(f"{one.url}/mgmt/tm/ltm/pool", json={"name": "a"}, auth=(USER, PASSWORD), verify=one.ca_path)
    assert sync_status(two) == "Changes Pending"
    requests.post(f"{two.url}/mgmt/tm/ltm/pool", json={"name": "b"}, auth=(USER, PASSWORD), verify=two.ca_path)
    assert "possible change conflict" in group.status()[2]


def test_a_lagging_sync_is_waited_for(pair, clock, tmp_path):
    one, two, group = pair
    group.lag = 5.0
    assert deploy.deploy(target(pair, clock, tmp_path), SHOP).result == "applied"
    assert sum(clock.sleeps) >= 5.0 and pools(two) == ["web"]


def test_a_sync_that_lags_past_sync_timeout_fails_the_apply(pair, clock, tmp_path):
    one, two, group = pair
    group.lag = 120.0
    with pytest.raises(LbctlError, match=r"device group dg1 not In Sync 10s after config-sync: Syncing"):
        deploy.deploy(target(pair, clock, tmp_path, sync_timeout="10s"), SHOP, policy=guard.Policy(force=True))


def test_a_failed_sync_fails_the_apply_naming_the_status(pair, clock, tmp_path):
    one, two, group = pair
    group.failure = "01070712:3: Caught configuration exception (0), peer unreachable"
    with pytest.raises(LbctlError, match=r"config-sync to group dg1 failed: Sync Failure \(01070712:3"):
        deploy.deploy(target(pair, clock, tmp_path), SHOP)
    assert pools(two) == []


def test_after_a_failover_the_new_active_device_is_written(pair, clock, tmp_path):
    one, two, group = pair
    t = target(pair, clock, tmp_path)
    deploy.deploy(t, SHOP)
    group.fail_over()
    assert deploy.deploy(t, MORE, policy=guard.Policy(force=True)).result == "applied"
    assert two.device.syncs == ["dg1"] and sync_status(one) == "In Sync"


def test_no_active_device_is_a_temporary_error_naming_each(pair, clock, tmp_path):
    one, two, group = pair
    one.device.failover = "STANDBY"
    with pytest.raises(Temporary, match=r"no ACTIVE device among 2: .* is STANDBY; .* is STANDBY"):
        target(pair, clock, tmp_path).plan(SHOP)


def test_devices_and_host_together_or_one_device_are_refused(pair, clock, tmp_path):
    with pytest.raises(LbctlError, match="targets.f5: takes host or devices, not both"):
        target(pair, clock, tmp_path, host="127.0.0.1")
    with pytest.raises(LbctlError, match="targets.f5.devices: must list at least two different devices"):
        target(pair, clock, tmp_path, devices=["127.0.0.1:443"])
