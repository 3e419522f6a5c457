"""The bigip target against the BIG-IP emulator, through the real f5-sdk and requests.

Nothing is mocked: the target talks HTTPS (verified with the emulator's CA) to
``lbctl_testkit.emulators.bigip``.  Time is a fake clock; backoff and AS3 polling sleep
through a recorder, so no test waits for luck.
"""

from __future__ import annotations

import json
from pathlib import Path

import f5.bigip  # noqa: F401  (f5-sdk, which lbctl.targets.icontrol imports: missing, this file errors)
import pytest
import requests
from click.testing import CliRunner

from lbctl import config, deploy, guard, model
from lbctl.cli import cli
from lbctl.errors import ApplyError, ConfigError, Temporary, ValidationError, VerifyError
from lbctl.targets.base import Change
from lbctl.targets.bigip import as3
from lbctl.targets.bigip.target import BigIPTarget
from lbctl_testkit.emulators.bigip import BigIPEmulator

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated:DeprecationWarning")]
USER, PASSWORD, ENV = "admin", "s3cret", "LBCTL_TEST_BIGIP_PASSWORD"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emu(clock):
    with BigIPEmulator(USER, PASSWORD, device_groups=("dg1",), clock=clock) as e:
        yield e
        assert e.internal_errors == []


@pytest.fixture(autouse=True)
def password(monkeypatch):
    monkeypatch.setenv(ENV, PASSWORD)


class Make:
    """Builds targets against the emulator; ``sleeps`` records every backoff and poll."""

    def __init__(self, emu: BigIPEmulator, clock: Clock, tmp_path: Path) -> None:
        self.emu, self.clock, self.tmp_path = emu, clock, tmp_path
        self.sleeps: list[float] = []

    def raw(self, **overrides) -> dict:
        raw = {"kind": "bigip", "host": "127.0.0.1", "port": self.emu.port, "username": USER,
               "password_env": ENV, "ca_bundle": self.emu.ca_path, "drain_time": "60s", "backoff": "1s"}
        raw.update(overrides)
        return {k: v for k, v in raw.items() if v is not None}

    def __call__(self, **overrides) -> BigIPTarget:
        settings = config.target("f5", self.raw(**overrides), "targets.f5", self.tmp_path, self.tmp_path / "state")
        return BigIPTarget(settings, clock=self.clock, sleep=self.sleeps.append)


@pytest.fixture
def make(emu, clock, tmp_path) -> Make:
    return Make(emu, clock, tmp_path)


def desired(*pools: tuple[str, list[tuple]], check: str = "http") -> model.Desired:
    health = model.HealthCheck(type=check, path="/health")
    return model.Desired(pools=tuple(model.Pool(name, health=health, members=tuple(
        model.Member(m[0], m[1], m[2], **(m[3] if len(m) > 3 else {})) for m in members)) for name, members in pools))


SHOP = desired(("web", [("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80)]),
               ("api", [("api-1", "10.0.1.1", 9000)]))


FORCE = guard.Policy(force=True)  # these tests remove pools on purpose; the guard has its own test


def sync(target: BigIPTarget, wanted: model.Desired) -> deploy.Outcome:
    return deploy.deploy(target, wanted, policy=FORCE)


def writes(emu: BigIPEmulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emu.requests if r.method != "GET"]


def settled(value):
    """A dump without the ``generation`` counters, which every write moves on."""
    if isinstance(value, dict):
        return {k: settled(v) for k, v in value.items() if k != "generation"}
    return [settled(v) for v in value] if isinstance(value, list) else value


def rest(emu: BigIPEmulator, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, emu.url + path, auth=(USER, PASSWORD), verify=emu.ca_path, timeout=10, **kw)


# -- sync ------------------------------------------------------------------------------------
def test_first_sync_creates_pools_members_and_monitors_in_one_transaction(emu, make):
    target = make()
    emu.clear_requests()
    outcome = sync(target, SHOP)
    assert outcome.result == "applied"
    assert emu.device.txns.commits == 1
    assert [w for w in writes(emu) if not w[1].startswith("/mgmt/tm/ltm/")] == [
        ("POST", "/mgmt/shared/authn/login"), ("POST", "/mgmt/tm/transaction/"),
        ("PATCH", f"/mgmt/tm/transaction/{emu.device.txns._last_id}"), ("POST", "/mgmt/tm/sys/config/")]
    dump = emu.dump()
    assert sorted(dump["pools"]) == ["/Common/api", "/Common/web"]
    web = dump["pools"]["/Common/web"]
    assert (web["description"], web["monitor"].strip()) == ("lbctl:owner=lbctl", "/Common/web_http")
    assert [(m["name"], m["description"], m["session"]) for m in web["members"]] == [
        ("10.0.0.1:80", "web-1", "user-enabled"), ("10.0.0.2:80", "web-2", "user-enabled")]
    monitor = dump["monitors"]["/Common/web_http"]
    assert (monitor["send"], monitor["recv"]) == ("GET /health HTTP/1.0\\r\\n\\r\\n", "^HTTP/1\\.[01] 200")
    assert emu.saves == 1 and not emu.unsaved_changes
    assert target.state.last()["result"] == "applied"


def test_a_second_apply_writes_nothing(emu, make):
    sync(make(), SHOP)
    emu.clear_requests()
    outcome = sync(make(), SHOP)
    assert outcome.result == "unchanged"
    assert writes(emu) == [("POST", "/mgmt/shared/authn/login")]


def test_one_changed_member_costs_a_few_calls(emu, make):
    target = make()
    sync(target, SHOP)
    emu.clear_requests()
    changed = desired(("web", [("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80, {"state": "maint"})]),
                      ("api", [("api-1", "10.0.1.1", 9000)]))
    assert sync(target, changed).result == "applied"
    tid = emu.device.txns._last_id
    assert [(r.method, r.path) for r in emu.requests] == [
        ("GET", "/mgmt/tm/ltm/pool"), ("GET", "/mgmt/tm/ltm/monitor/http"), ("GET", "/mgmt/tm/ltm/monitor/tcp"),
        ("POST", "/mgmt/tm/transaction/"), ("PATCH", "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.2:80"),
        ("PATCH", f"/mgmt/tm/transaction/{tid}"), ("POST", "/mgmt/tm/sys/config/"),
        ("GET", "/mgmt/tm/ltm/pool/~Common~web")]   # read back: only the pool that changed
    member = emu.dump()["pools"]["/Common/web"]["members"][1]
    assert (member["session"], member["state"]) == ("user-disabled", "user-down")


def test_removal_drains_first_and_deletes_at_zero_connections_or_after_the_drain_time(emu, make, clock):
    target = make()
    sync(target, SHOP)
    fewer = desired(("web", [("web-1", "10.0.0.1", 80)]), ("api", [("api-1", "10.0.1.1", 9000)]))
    emu.set_member_connections("/Common/web", "10.0.0.2:80", 3)
    assert sync(target, fewer).result == "applied"
    member = emu.dump()["pools"]["/Common/web"]["members"][1]
    assert (member["session"], member["description"]) == ("user-disabled", f"lbctl:drain-since={int(clock.now)}")

    clock.now += 10
    waiting = target.plan(fewer)
    assert waiting.noop and waiting.summary == (
        "= member web/10.0.0.2:80 draining: 3 connections, 50s of drain time left",)
    assert target.recheck_after == 15.0  # a hint for lbctl watch: look again while members drain
    assert sync(target, fewer).result == "unchanged"

    emu.set_member_connections("/Common/web", "10.0.0.2:80", 0)
    assert target.plan(fewer).summary == ("- member web/10.0.0.2:80 (no connections left)",
                                          "- node 10.0.0.2 (no member uses it)")
    assert sync(target, fewer).result == "applied"
    assert [m["name"] for m in emu.dump()["pools"]["/Common/web"]["members"]] == ["10.0.0.1:80"]
    assert "/Common/10.0.0.2" not in emu.dump()["nodes"]

    # a busy member goes anyway once the drain time has passed; so does a whole pool
    assert sync(target, desired(("web", [("web-1", "10.0.0.1", 80)]))).result == "applied"
    emu.set_member_connections("/Common/api", "10.0.1.1:9000", 7)
    clock.now += 61
    assert sync(target, desired(("web", [("web-1", "10.0.0.1", 80)]))).result == "applied"
    dump = emu.dump()
    assert sorted(dump["pools"]) == ["/Common/web"] and "/Common/api_http" not in dump["monitors"]
    assert sorted(dump["nodes"]) == ["/Common/10.0.0.1"]


def test_objects_lbctl_does_not_own_are_never_touched(emu, make):
    rest(emu, "POST", "/mgmt/tm/ltm/monitor/http", json={"name": "legacy_http", "partition": "Common"})
    rest(emu, "POST", "/mgmt/tm/ltm/pool", json={"name": "legacy", "partition": "Common", "monitor": "legacy_http",
                                                  "members": [{"name": "10.0.0.2:80"}, {"name": "10.9.9.9:80"}]})
    rest(emu, "POST", "/mgmt/tm/ltm/node", json={"name": "spare", "partition": "Common", "address": "10.8.8.8"})
    theirs = {k: v for k, v in emu.dump().items() if k in ("pools", "monitors", "nodes")}
    target = make(drain_time=0)
    sync(target, SHOP)
    assert sync(target, desired()).result == "applied"   # lbctl wants nothing any more
    after = emu.dump()
    assert after["pools"] == theirs["pools"] and after["monitors"] == theirs["monitors"]
    # lbctl's own nodes went; 10.0.0.2 stays: their pool still uses it
    assert after["nodes"] == theirs["nodes"] and sorted(after["nodes"]) == [
        "/Common/10.0.0.2", "/Common/10.9.9.9", "/Common/spare"]


def test_an_unowned_pool_with_a_wanted_name_is_a_clear_error_and_nothing_changes(emu, make):
    rest(emu, "POST", "/mgmt/tm/ltm/pool", json={"name": "web", "partition": "Common", "description": "by hand"})
    before = emu.dump()
    with pytest.raises(ConfigError, match=r"^pool /Common/web exists on the device and is not lbctl's"):
        sync(make(), SHOP)
    assert emu.dump() == before


# -- failures ---------------------------------------------------------------------------------
def test_a_failed_commit_changes_nothing_and_says_so(emu, make):
    target = make()
    sync(target, SHOP)
    before = emu.dump()
    emu.fail_next_commit("01070734:3: Configuration error: injected")
    with pytest.raises(ApplyError) as info:
        sync(target, desired(("web", [("web-1", "10.0.0.1", 80, {"weight": 5})])))
    assert str(info.value) == ("f5: the device rejected the transaction: 01070734:3: Configuration error: injected; "
                               "read back: nothing was changed")
    assert emu.dump() == before
    assert target.state.last()["result"] == "failed"


def test_a_rejected_object_is_named(emu, make):
    rest(emu, "POST", "/mgmt/tm/ltm/monitor/https", json={"name": "web_http", "partition": "Common"})
    before = emu.dump()
    with pytest.raises(ApplyError) as info:
        sync(make(), SHOP)
    assert str(info.value).startswith("f5: monitor web_http: the device rejected the transaction: 01020066:3: "
                                      "The requested Monitor (/Common/web_http) already exists")
    assert str(info.value).endswith("; read back: nothing was changed")
    assert emu.dump() == before


def test_5xx_and_lost_connections_are_retried_with_backoff(emu, make):
    emu.fail_next(2, status=503)
    target = make()
    assert sync(target, SHOP).result == "applied"
    assert make.sleeps == [1.0, 2.0]
    assert [r.status for r in emu.requests[:3]] == [503, 503, 200]


def test_a_failure_inside_the_transaction_retries_the_whole_transaction(emu, make):
    target = make()
    plan = target.plan(SHOP)
    real = target.device.request
    injected = []

    def request(method, path, **kw):  # our own API: fail the first queued command once
        if (kw.get("headers") or {}).get("X-F5-REST-Coordination-Id") and not injected:
            injected.append(path)
            emu.fail_next(1, status=500)
        return real(method, path, **kw)

    target.device.request = request
    target.apply(plan)
    assert injected and make.sleeps == [1.0]
    assert sum(1 for r in emu.requests if (r.method, r.path) == ("POST", "/mgmt/tm/transaction/")) == 2
    assert emu.device.txns.commits == 1 and sorted(emu.dump()["pools"]) == ["/Common/api", "/Common/web"]


def test_a_device_that_keeps_failing_gives_up_with_one_line(emu, make):
    emu.fail_next(10, status=502)
    with pytest.raises(Temporary, match=r"^f5: connect: 502 Injected failure .* \(gave up after 3 attempts\)$"):
        sync(make(retries=2), SHOP)
    assert make.sleeps == [1.0, 2.0]


def test_an_expired_token_logs_in_again(emu, make):
    target = make()
    sync(target, SHOP)
    logins = emu.logins
    emu.expire_tokens()
    assert sync(target, desired(("web", [("web-1", "10.0.0.1", 80)]))).result == "applied"
    assert emu.logins == logins + 1
    assert [r.status for r in emu.requests].count(401) == 1


def test_bad_credentials_and_missing_secrets_are_config_errors(emu, make, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, "wrong")
    with pytest.raises(ConfigError, match=rf"^f5: login to https://127.0.0.1:{emu.port} as admin failed"):
        make().plan(SHOP)
    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match=rf"^targets\.f5\.password_env: the environment variable {ENV} is not set$"):
        make().plan(SHOP)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    assert not make(password_env=None, password_file="pw").plan(SHOP).noop


def test_tls_is_verified_with_the_configured_ca_and_fails_clearly_with_another(emu, make):
    with pytest.raises(ConfigError) as info:
        make(ca_bundle=requests.certs.where()).plan(SHOP)
    assert str(info.value) == (f"f5: TLS verification of https://127.0.0.1:{emu.port} failed (certificate verify "
                               "failed); set ca_bundle to the CA that signed the device's certificate")
    assert emu.requests == []   # refused during the handshake, and not retried
    assert not make(ca_bundle=None, verify=False).plan(SHOP).noop


def test_a_missing_partition_is_named(emu, make):
    with pytest.raises(ConfigError, match="^f5: partition Dev does not exist on https://"):
        make(partition="Dev").plan(SHOP)
    rest(emu, "POST", "/mgmt/tm/auth/partition", json={"name": "Dev"})
    assert sync(make(partition="Dev"), SHOP).result == "applied"
    assert sorted(emu.dump()["pools"]) == ["/Dev/api", "/Dev/web"]


# -- check, reload, rollback ----------------------------------------------------------------
def test_device_check_validates_without_changing_anything(emu, make):
    target = make(device_check=True)
    change = target.plan(SHOP)
    before = emu.dump()
    target.check(change)
    assert emu.dump() == before and emu.device.txns.commits == 1
    emu.fail_next_commit("01070734:3: Configuration error: rejected in validation")
    with pytest.raises(ValidationError, match="rejected in validation"):
        sync(target, SHOP)
    assert emu.dump() == before


def test_save_and_config_sync_after_the_change(emu, make):
    sync(make(sync_group="dg1"), SHOP)
    assert emu.syncs == ["dg1"] and emu.saves == 1
    sync(make(save_config=False), desired(("web", [("web-1", "10.0.0.1", 80)])))
    assert emu.saves == 1 and emu.unsaved_changes


def test_rollback_puts_the_previous_pools_back_in_one_transaction(emu, make):
    target = make()
    sync(target, SHOP)
    before = emu.dump()
    change = target.plan(desired(("web", [("web-1", "10.0.0.1", 80, {"weight": 4}), ("web-9", "10.0.0.9", 80)])))
    checkpoint = target.apply(change)
    assert emu.dump() != before
    commits = emu.device.txns.commits
    target.verify(target.rollback(checkpoint))
    assert emu.device.txns.commits == commits + 1
    assert settled(emu.dump()) == settled(before)


def test_verify_reads_back_what_the_change_says_with_nothing_kept_from_apply(emu, make):
    change = make().plan(SHOP)
    make().apply(change)
    make().verify(change)  # another target object: what to read back comes with the change
    rest(emu, "DELETE", "/mgmt/tm/ltm/pool/~Common~web/members/~Common~10.0.0.2:80").raise_for_status()
    with pytest.raises(VerifyError) as wrong:
        make().verify(change)
    assert str(wrong.value) == ("f5: read back after the change: pool web member 10.0.0.2:80: expected "
                                "10.0.0.2:80 ratio=1 priority=0 limit=0 enabled 'web-2', found none")
    with pytest.raises(ConfigError, match="^f5: a bigip target takes only the changes its own plan made"):
        make().check(Change("f5", None, "pool web\n"))


# -- AS3 ----------------------------------------------------------------------------------------
def test_as3_declares_one_tenant_and_is_idempotent(emu, make):
    target = make(mode="as3", as3_tenant="Shop")
    emu.clear_requests()
    assert sync(target, SHOP).result == "applied"
    assert [(r.method, r.path, r.status) for r in emu.requests if "appsvcs" in r.path] == [
        ("GET", "/mgmt/shared/appsvcs/declare/Shop", 204), ("POST", "/mgmt/shared/appsvcs/declare", 200),
        ("GET", "/mgmt/shared/appsvcs/declare/Shop", 200)]
    assert sorted(emu.dump()["pools"]) == ["/Shop/lbctl/api", "/Shop/lbctl/web"]
    emu.clear_requests()
    assert sync(target, SHOP).result == "unchanged"
    assert writes(emu) == []


def test_as3_carries_the_routes_and_posts_when_only_they_change(emu, make):
    target = make(mode="as3", as3_tenant="Shop")
    listener = model.Listener("front", 80, default_pool="web", routes=(
        model.Route("api", "api.example.com", service="api"),))
    routed = model.Desired((listener,), SHOP.pools)
    assert sync(target, routed).result == "applied"
    policy = as3.tenant_policies(target.device.as3_tenant("Shop"), "Shop")["routes_front"]
    assert [r["actions"][0]["select"]["pool"]["use"] for r in policy["rules"]] == ["api", "web"]
    assert sync(target, routed).result == "unchanged"
    moved = model.Desired((model.replace(listener, routes=(model.Route("api", "*.example.com"),)),), SHOP.pools)
    change = target.plan(moved)
    assert not change.noop and "~ the listeners' route policies (AS3 Endpoint_Policy)" in change.summary
    assert sync(target, moved).result == "applied"
    policy = as3.tenant_policies(target.device.as3_tenant("Shop"), "Shop")["routes_front"]
    assert policy["rules"][0]["conditions"][0]["host"] == {"operand": "ends-with", "values": [".example.com"]}
    broken = as3.document(moved, "Shop", "lbctl")  # as AS3 does, the emulator refuses a pointer to no pool
    broken["Shop"]["lbctl"]["routes_front"]["rules"][0]["actions"][0]["select"]["pool"]["use"] = "nope"
    with pytest.raises(ApplyError, match=r"^f5: AS3 tenant Shop: declaration failed: declaration is invalid: "
                                         r"/Shop/lbctl/routes_front/rules/0/actions/0/select/pool: Unable to find"):
        target.device.as3_declare(broken, timeout=10)


def test_as3_follows_a_202_to_its_task(emu, make):
    target = make(mode="as3", as3_tenant="Shop")
    emu.set_as3_delay(60, sync_timeout=0.05)
    target.device.sleep = lambda seconds: (make.sleeps.append(seconds), emu.set_as3_delay(0))
    assert sync(target, SHOP).result == "applied"
    assert make.sleeps[0] == 1.0
    assert any(r.path.startswith("/mgmt/shared/appsvcs/task/") for r in emu.requests)
    assert sorted(emu.dump()["pools"]) == ["/Shop/lbctl/api", "/Shop/lbctl/web"]


def test_as3_rejections_422_are_clear_and_change_nothing(emu, make):
    rest(emu, "POST", "/mgmt/tm/ltm/node", json={"name": "taken", "partition": "Common", "address": "10.0.0.2"})
    target = make(mode="as3", as3_tenant="Shop")
    before = emu.dump()
    with pytest.raises(ApplyError) as info:
        sync(target, SHOP)
    assert str(info.value) == ("f5: AS3 tenant Shop: declaration failed: 0107176c:3: Invalid Node, the IP address "
                               "10.0.0.2 already exists.; AS3 rolled back the tenants that failed; read back: nothing was changed")
    assert emu.dump() == before
    invalid = as3.document(SHOP, "Shop", "lbctl")
    del invalid["Shop"]["lbctl"]["web"]["members"][0]["servicePort"]
    with pytest.raises(ApplyError, match=r"^f5: AS3 declaration is invalid: /Shop/lbctl/web/members/0: should have "
                                         r"required property 'servicePort'$"):
        target.device.as3_declare(invalid, timeout=10)
    rest(emu, "DELETE", "/mgmt/tm/ltm/node/~Common~taken")
    mixed = as3.document(SHOP, "Shop", "lbctl")   # 207: Shop lands; Other clashes with Shop's node addresses
    mixed["Other"] = {**as3.document(SHOP, "Other", "lbctl")["Other"]}
    with pytest.raises(ApplyError, match=r"^f5: AS3 tenant Other: declaration failed: 0107176c:3: Invalid Node"):
        target.device.as3_declare(mixed, timeout=10)
    assert "/Shop/lbctl/web" in emu.dump()["pools"] and "/Other/lbctl/web" not in emu.dump()["pools"]


def test_as3_checks_the_schema_before_sending(emu, make):
    target = make(mode="as3", as3_tenant="Shop")
    emu.clear_requests()
    with pytest.raises(ValidationError, match=r"^f5: the AS3 declaration does not match F5's schema: /Shop/lbctl: "):
        sync(target, desired(("web-", [("a", "10.0.0.1", 80)])))
    assert writes(emu) == [("POST", "/mgmt/shared/authn/login")]


def test_as3_drains_removed_members_too(emu, make, clock):
    target = make(mode="as3", as3_tenant="Shop")
    sync(target, SHOP)
    fewer = desired(("web", [("web-1", "10.0.0.1", 80)]), ("api", [("api-1", "10.0.1.1", 9000)]))
    sync(target, fewer)
    member = emu.dump()["pools"]["/Shop/lbctl/web"]["members"][1]
    assert (member["session"], member["description"]) == ("user-disabled", f"lbctl:drain-since={int(clock.now)}")
    emu.set_member_connections("/Shop/lbctl/web", "/Shop/10.0.0.2:80", 1)
    assert sync(target, fewer).result == "unchanged"
    clock.now += 61
    assert sync(target, fewer).result == "applied"
    assert len(emu.dump()["pools"]["/Shop/lbctl/web"]["members"]) == 1


# -- the command line ---------------------------------------------------------------------------
def write_config(tmp_path: Path, emu: BigIPEmulator, inventory: dict, **extra) -> Path:
    (tmp_path / "inv.yml").write_text(json.dumps(inventory))
    target = {"kind": "bigip", "host": "127.0.0.1", "port": emu.port, "username": USER, "password_env": ENV,
              "ca_bundle": emu.ca_path, "backoff": "0s", **extra}
    path = tmp_path / "lbctl.yml"
    path.write_text(json.dumps({"source": {"inventory": "inv.yml"}, "state_dir": "state", "targets": {"f5": target}}))
    return path


def inventory(*members: tuple[str, str]) -> dict:
    return {"pools": {"web": {"health": {"type": "tcp"},
                              "members": [{"name": n, "address": a, "port": 80} for n, a in members]}}}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_plan_apply_status(emu, tmp_path):
    cfg = write_config(tmp_path, emu, inventory(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    planned = run("plan", "-c", cfg)
    assert planned.exit_code == 2, planned.output
    assert planned.output == ("+ monitor web_tcp (tcp, every 2s)\n"
                              "+ pool web (round-robin, monitor /Common/web_tcp, 2 members)\n"
                              "+ member web/10.0.0.1:80 ratio=1 priority=0 limit=0 enabled 'web-1'\n"
                              "+ member web/10.0.0.2:80 ratio=1 priority=0 limit=0 enabled 'web-2'\n")
    assert emu.dump()["pools"] == {}
    applied = run("apply", "-c", cfg)
    assert (applied.exit_code, applied.output) == (
        0, f"f5: applied https://127.0.0.1:{emu.port} partition Common and bigip saved its configuration\n")
    again = run("plan", "-c", cfg)
    assert (again.exit_code, again.output) == (0, f"https://127.0.0.1:{emu.port} partition Common: no changes\n")
    cfg = write_config(tmp_path, emu, inventory(("web-1", "10.0.0.1")))
    changed = run("plan", "-c", cfg)
    assert (changed.exit_code, changed.output) == (2, "~ member web/10.0.0.2:80: draining (disabled now; deleted "
                                                      "after 300s or at zero connections)\n")
    status = run("status", "-c", cfg)
    assert status.exit_code == 0
    assert "process     reachable, BIG-IP 15.1.0, 1 pools and 1 monitors owned by lbctl" in status.output
    assert "last apply" in status.output and " applied f5: applied" in status.output
    rolled = run("rollback", "-c", cfg, "-t", "f5")
    assert rolled.exit_code == 1 and "a bigip target keeps no backups" in rolled.output


def test_cli_errors_are_one_line_and_change_nothing(emu, tmp_path):
    rest(emu, "POST", "/mgmt/tm/ltm/pool", json={"name": "web", "partition": "Common"})
    before = emu.dump()
    cfg = write_config(tmp_path, emu, inventory(("web-1", "10.0.0.1")))
    result = run("apply", "-c", cfg)
    assert result.exit_code == 1
    assert result.output.startswith("lbctl: error: pool /Common/web exists on the device and is not lbctl's")
    assert result.output.count("\n") == 1
    assert emu.dump() == before


def test_the_guard_refuses_to_remove_a_serving_pool_from_the_device(emu, make):
    target = make(drain_time=0)
    sync(target, SHOP)
    before = emu.dump()["pools"]
    with pytest.raises(guard.Refused, match=r"^f5: refusing the change: it would remove pool api and its 1 serving "
                                            r"members \(10\.0\.1\.1:9000\)"):
        deploy.deploy(target, desired(("web", [("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80)])))
    assert emu.dump()["pools"] == before
    assert deploy.deploy(target, desired(("web", [("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80)])),
                         policy=guard.Policy(allow=frozenset({"api"}))).result == "applied"


# -- live member states (the operator page) ---------------------------------------------------
def test_live_members_report_the_monitor_and_the_admin_state(emu, make):
    target = make()
    drained = desired(("web", [("web-1", "10.0.0.1", 80), ("web-2", "10.0.0.2", 80), ("web-3", "10.0.0.3", 80,
                                                                                     {"state": "drain"})]),
                      ("api", [("api-1", "10.0.1.1", 9000, {"state": "maint"})]))
    assert sync(target, drained).result == "applied"
    emu.set_member_health("/Common/web", "10.0.0.2:80", "down")
    emu.clear_requests()
    live = target.live_members()
    assert [(r.method, r.path) for r in emu.requests] == [("GET", "/mgmt/tm/ltm/pool")]  # one read, every pool
    web = {member: (s["live"], s["check"]) for member, s in live["web"].items()}
    assert web == {"10.0.0.1:80": ("up", "up"), "10.0.0.2:80": ("down", "down"), "10.0.0.3:80": ("drain", "up")}
    assert live["api"]["10.0.1.1:9000"]["live"] == "maint"
