"""The BIG-IP emulator, driven the way lbctl drives a device: f5-sdk and requests.

TLS is verified everywhere: f5-sdk gets ``verify=emu.ca_path`` (it passes it to
both its session and its token login); plain requests get ``verify=`` on every
call, because ``REQUESTS_CA_BUNDLE`` in the environment overrides a
``Session.verify`` attribute (requests' ``merge_environment_settings``).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any, Callable

import pytest
import requests
from f5.bigip import ManagementRoot
from f5.bigip.contexts import TransactionContextManager
from f5.sdk_exception import TransactionSubmitException
from icontrol.exceptions import iControlUnexpectedHTTPError

from lbctl_testkit.emulators.bigip import BigIPEmulator
from lbctl_testkit.support import SKIP_PREFIX

pytestmark = pytest.mark.filterwarnings(
    "ignore:distutils Version classes are deprecated:DeprecationWarning")

USER, PASSWORD = "admin", "s3cret"
AS3_DECL: dict[str, Any] = {
    "class": "ADC", "schemaVersion": "3.0.0", "id": "lbctl-1",
    "T1": {"class": "Tenant", "A1": {
        "class": "Application", "template": "generic",
        "health": {"class": "Monitor", "monitorType": "http", "send": "GET /health",
                   "receive": "200 OK"},
        "web_pool": {"class": "Pool", "loadBalancingMode": "round-robin",
                     "monitors": [{"use": "health"}],
                     "members": [{"servicePort": 80,
                                  "serverAddresses": ["192.0.2.10", "192.0.2.11"],
                                  "adminState": "enable", "ratio": 1, "priorityGroup": 0,
                                  "connectionLimit": 0, "shareNodes": False}]}}}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock):
    with BigIPEmulator(USER, PASSWORD, device_groups=("dg1",), clock=clock) as e:
        yield e
        assert e.internal_errors == []


@pytest.fixture
def mr(emu: BigIPEmulator) -> ManagementRoot:
    return ManagementRoot("127.0.0.1", USER, PASSWORD, port=emu.port, token=True,
                          verify=emu.ca_path)


class Rest:
    """requests with basic auth and the emulator's CA on every call."""

    def __init__(self, emu: BigIPEmulator) -> None:
        self.emu = emu
        self.session = requests.Session()
        self.session.auth = (USER, PASSWORD)

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.session.request(method, self.emu.url + path, verify=self.emu.ca_path,
                                    timeout=10, **kw)


@pytest.fixture
def rest(emu: BigIPEmulator) -> Rest:
    return Rest(emu)


def http_error(call: Callable[[], Any]) -> requests.Response:
    with pytest.raises(iControlUnexpectedHTTPError) as info:
        call()
    return info.value.response


# -- transport, auth, construction ---------------------------------------------------------
def test_sdk_construction_reads_version_over_verified_tls(emu, mr):
    assert mr.tmos_version == "15.1.0"
    assert [(r.method, r.path) for r in emu.requests[:2]] == [
        ("POST", "/mgmt/shared/authn/login"), ("GET", "/mgmt/tm/sys/")]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(emu.url + "/mgmt/tm/sys", auth=(USER, PASSWORD), timeout=10,
                     verify=requests.certs.where())


def test_login_token_fields_and_basic_auth_errors(emu, rest):
    body = rest("POST", "/mgmt/shared/authn/login",
                json={"username": USER, "password": PASSWORD, "loginProviderName": "tmos"}).json()
    token = body["token"]
    assert token["timeout"] == 1200
    assert token["expirationMicros"] - token["lastUpdateMicros"] == 1200 * 1_000_000
    headers = {"X-F5-Auth-Token": token["token"]}
    anon = requests.get(emu.url + "/mgmt/tm/ltm/pool", headers=headers, verify=emu.ca_path,
                        timeout=10)
    assert anon.status_code == 200 and "items" not in anon.json()
    bad = rest("POST", "/mgmt/shared/authn/login", json={"username": USER, "password": "x"})
    assert bad.status_code == 401 and bad.json()["kind"] == ":resterrorresponse"
    none = requests.get(emu.url + "/mgmt/tm/ltm/pool", verify=emu.ca_path, timeout=10)
    assert none.status_code == 401
    assert none.json()["message"].startswith("Authorization failed: no user authentication")


def test_expired_tokens_give_401_until_the_client_logs_in_again(emu, mr):
    mr.tm.ltm.pools.get_collection()
    logins = emu.logins
    emu.expire_tokens()
    resp = http_error(mr.tm.ltm.pools.get_collection)
    assert resp.status_code == 401
    assert resp.json()["message"] == "X-F5-Auth-Token does not exist."
    mr.icrs.session.auth.token = None          # what lbctl does on 401: log in again
    assert mr.tm.ltm.pools.get_collection() == []
    assert emu.logins == logins + 1


def test_token_lifetime_extend_and_delete(emu, clock, rest):
    tok = rest("POST", "/mgmt/shared/authn/login",
               json={"username": USER, "password": PASSWORD}).json()["token"]["token"]
    hdr = {"X-F5-Auth-Token": tok}

    def call() -> int:
        return requests.get(emu.url + "/mgmt/tm/sys/version", headers=hdr,
                            verify=emu.ca_path, timeout=10).status_code

    patched = requests.patch(emu.url + f"/mgmt/shared/authz/tokens/{tok}", headers=hdr,
                             json={"timeout": 3600}, verify=emu.ca_path, timeout=10)
    assert patched.status_code == 200 and patched.json()["timeout"] == 3600
    clock.now += 1300
    assert call() == 200
    clock.now += 3600
    assert call() == 401


# -- pools, members, nodes -----------------------------------------------------------------
def test_pool_with_members_and_monitor_read_modify_delete(emu, mr):
    mon = mr.tm.ltm.monitor.https.http.create(name="hc", partition="Common",
                                              send="GET /health\\r\\n", recv="200 OK")
    assert mon.defaultsFrom == "/Common/http"
    pool = mr.tm.ltm.pools.pool.create(
        name="web", partition="Common", loadBalancingMode="least-connections-member",
        monitor="/Common/hc", description="web tier",
        members=[{"name": "10.0.0.1:80", "ratio": 2}, {"name": "10.0.0.2:80"}])
    assert pool.monitor.strip() == "/Common/hc"
    loaded = mr.tm.ltm.pools.pool.load(name="web", partition="Common")
    members = {m.name: m for m in loaded.members_s.get_collection()}
    assert sorted(members) == ["10.0.0.1:80", "10.0.0.2:80"]
    assert members["10.0.0.1:80"].ratio == 2
    assert (members["10.0.0.1:80"].session, members["10.0.0.1:80"].state) == \
        ("monitor-enabled", "up")
    member = loaded.members_s.members.load(name="10.0.0.2:80", partition="Common")
    member.modify(session="user-disabled")
    assert (member.session, member.state) == ("user-disabled", "up")
    member.modify(session="user-disabled", state="user-down")
    assert member.state == "user-down"
    member.update(ratio=7, connectionLimit=100, description="draining")
    again = loaded.members_s.members.load(name="10.0.0.2:80", partition="Common")
    assert (again.ratio, again.connectionLimit, again.session) == (7, 100, "user-disabled")
    again.delete()
    assert not loaded.members_s.members.exists(name="10.0.0.2:80", partition="Common")
    assert mr.tm.ltm.nodes.node.exists(name="10.0.0.2", partition="Common")
    loaded.delete()
    assert not mr.tm.ltm.pools.pool.exists(name="web", partition="Common")


def test_nodes_are_auto_created_and_referenced_nodes_cannot_be_deleted(emu, mr):
    pool = mr.tm.ltm.pools.pool.create(name="p1", partition="Common",
                                       members=[{"name": "10.0.0.5:80"}])
    pool.members_s.members.create(name="web1:8080", partition="Common", address="10.0.0.6")
    node = mr.tm.ltm.nodes.node.load(name="10.0.0.5", partition="Common")
    assert node.address == "10.0.0.5"
    assert mr.tm.ltm.nodes.node.load(name="web1", partition="Common").address == "10.0.0.6"
    resp = http_error(node.delete)
    assert resp.status_code == 400
    assert resp.json()["message"] == ("01070110:3: Node address '/Common/10.0.0.5' is "
                                      "referenced by a member of pool '/Common/p1'.")
    dup = http_error(lambda: mr.tm.ltm.nodes.node.create(name="other", partition="Common",
                                                         address="10.0.0.5"))
    assert dup.json()["message"] == "0107176c:3: Invalid Node, the IP address 10.0.0.5 " \
                                    "already exists."
    pool.delete()
    mr.tm.ltm.nodes.node.load(name="10.0.0.5", partition="Common").delete()
    assert not mr.tm.ltm.nodes.node.exists(name="10.0.0.5", partition="Common")


def test_duplicates_missing_objects_and_bad_values(emu, mr, rest):
    pool = mr.tm.ltm.pools.pool.create(name="p1", partition="Common",
                                       members=[{"name": "10.0.0.1:80"}])
    dup = http_error(lambda: mr.tm.ltm.pools.pool.create(name="p1", partition="Common"))
    assert dup.status_code == 409
    assert dup.json() == {"code": 409, "message": "01020066:3: The requested Pool (/Common/p1) "
                          "already exists in partition Common.", "errorStack": [],
                          "apiError": 3}
    assert http_error(lambda: pool.members_s.members.create(
        name="10.0.0.1:80", partition="Common")).status_code == 409
    missing = rest("GET", "/mgmt/tm/ltm/pool/~Common~nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == "01020036:3: The requested Pool (/Common/nope) was " \
                                        "not found."
    gone = rest("GET", "/mgmt/tm/ltm/pool/~Common~p1/members/~Common~10.0.0.9:80")
    assert gone.json()["message"] == ("01020036:3: The requested Pool Member (/Common/p1 "
                                      "/Common/10.0.0.9 80) was not found.")
    bad_state = rest("PATCH", "/mgmt/tm/ltm/pool/~Common~p1/members/~Common~10.0.0.1:80",
                     json={"state": "up"})
    assert bad_state.status_code == 400
    assert bad_state.json()["message"] == 'invalid property value "state":"up"'
    bad_mode = rest("PATCH", "/mgmt/tm/ltm/pool/~Common~p1", json={"loadBalancingMode": "x"})
    assert bad_mode.status_code == 400
    no_port = rest("POST", "/mgmt/tm/ltm/pool/~Common~p1/members",
                   json={"name": "10.0.0.3", "partition": "Common"})
    assert no_port.json()["message"].startswith("A port number or service name is missing")
    assert rest("POST", "/mgmt/tm/ltm/pool", data=b"{nope").json()["message"] == \
        "Found invalid JSON body in the request."
    assert rest("POST", "/mgmt/tm/ltm/pool", json={"name": "x", "partition": "Dev"}).json()[
        "message"] == "The requested folder (/Dev) was not found."
    unknown = rest("GET", "/mgmt/tm/ltm/foo")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Public URI path not registered: /tm/ltm/foo"


def test_put_resets_unspecified_fields_and_inline_members_replace_the_set(emu, rest):
    assert rest("POST", "/mgmt/tm/ltm/pool/", json={
        "name": "p1", "partition": "Common", "description": "d", "monitor": "/Common/http",
        "members": [{"name": "10.0.0.1:80", "ratio": 3}, "10.0.0.2:80"]}).status_code == 200
    put = rest("PUT", "/mgmt/tm/ltm/pool/~Common~p1/",
               json={"loadBalancingMode": "ratio-member", "kind": "ignored",
                     "members": [{"name": "10.0.0.2:80"}, {"name": "10.0.0.3:80"}]}).json()
    assert put["loadBalancingMode"] == "ratio-member"
    assert "description" not in put and "monitor" not in put
    members = rest("GET", "/mgmt/tm/ltm/pool/~Common~p1/members").json()["items"]
    assert [m["name"] for m in members] == ["10.0.0.2:80", "10.0.0.3:80"]
    assert rest("GET", "/mgmt/tm/ltm/node/~Common~10.0.0.1").status_code == 200
    renamed = rest("PATCH", "/mgmt/tm/ltm/pool/~Common~p1/members/~Common~10.0.0.2:80",
                   json={"address": "10.9.9.9"})
    assert renamed.status_code == 400


def test_queries_filter_select_expand_and_special_member_names(emu, mr, rest):
    rest("POST", "/mgmt/tm/auth/partition", json={"name": "Dev"})
    mr.tm.ltm.pools.pool.create(name="a", partition="Common",
                                members=[{"name": "2001:db8::1.80"}])
    mr.tm.ltm.pools.pool.create(name="b", partition="Dev", members=[
        {"name": "10.0.0.1%2:443", "partition": "Dev"}])
    pools = mr.tm.ltm.pools.get_collection(requests_params={
        "params": "$filter=partition+eq+Dev&expandSubcollections=true"})
    assert [p.fullPath for p in pools] == ["/Dev/b"]
    assert [m["name"] for m in pools[0].membersReference["items"]] == ["10.0.0.1%2:443"]
    member = pools[0].members_s.members.load(name="10.0.0.1%2:443", partition="Dev")
    assert member.address == "10.0.0.1%2"
    names = mr.tm.ltm.pools.get_collection(requests_params={"params": "$select=name"})
    assert names == [{"name": "a"}, {"name": "b"}]
    v6 = rest("GET", "/mgmt/tm/ltm/pool/~Common~a/members/~Common~2001:db8::1.80").json()
    assert v6["address"] == "2001:db8::1"
    assert rest("GET", "/mgmt/tm/ltm/pool", params={"$filter": "name eq a"}).status_code == 400


def test_member_stats_report_current_connections_for_draining(emu, mr):
    pool = mr.tm.ltm.pools.pool.create(name="p1", partition="Common",
                                       members=[{"name": "10.0.0.1:80"}])
    member = pool.members_s.members.load(name="10.0.0.1:80", partition="Common")
    emu.set_member_connections("/Common/p1", "10.0.0.1:80", 3)

    def cur_conns() -> int:
        entries = member.stats.load().entries
        (nested,) = entries.values()
        return nested["nestedStats"]["entries"]["serverside.curConns"]["value"]

    assert cur_conns() == 3
    emu.set_member_connections("/Common/p1", "10.0.0.1:80", 0)
    assert cur_conns() == 0


def test_virtual_server_references_pool(emu, mr):
    mr.tm.ltm.pools.pool.create(name="p1", partition="Common")
    vs = mr.tm.ltm.virtuals.virtual.create(
        name="vs1", partition="Common", destination="10.0.0.100:80", pool="p1",
        ipProtocol="tcp", profiles=[{"name": "/Common/tcp"}],
        sourceAddressTranslation={"type": "automap"})
    assert (vs.destination, vs.pool, vs.enabled) == ("/Common/10.0.0.100:80", "/Common/p1",
                                                     True)
    assert mr.tm.ltm.virtual_address_s.virtual_address.exists(name="10.0.0.100",
                                                              partition="Common")
    resp = http_error(mr.tm.ltm.pools.pool.load(name="p1", partition="Common").delete)
    assert "in use by a Virtual Server (/Common/vs1)" in resp.json()["message"]
    missing = http_error(lambda: mr.tm.ltm.virtuals.virtual.create(
        name="vs2", partition="Common", destination="10.0.0.101:80", pool="nopool"))
    assert missing.status_code == 400


# -- transactions --------------------------------------------------------------------------
def test_transaction_commits_all_commands(emu, mr):
    tx = mr.tm.transactions.transaction
    with TransactionContextManager(tx) as api:
        queued = api.tm.ltm.pools.pool.create(name="t1", partition="Common",
                                              members=[{"name": "10.0.1.1:80"}])
        assert queued.kind == "tm:transaction:commandsstate"
        api.tm.ltm.pools.pool.create(name="t2", partition="Common",
                                     members=[{"name": "10.0.1.2:80"}])
        assert not api.tm.ltm.pools.pool.exists(name="t1", partition="Common")
    assert {p.name for p in mr.tm.ltm.pools.get_collection()} == {"t1", "t2"}


def test_transaction_with_one_bad_command_changes_nothing(emu, mr, rest):
    mr.tm.ltm.pools.pool.create(name="exists", partition="Common")
    before = emu.dump()
    tx = mr.tm.transactions.transaction
    with pytest.raises(TransactionSubmitException) as info:
        with TransactionContextManager(tx) as api:
            api.tm.ltm.pools.pool.create(name="new", partition="Common",
                                         members=[{"name": "10.0.2.1:80"}])
            api.tm.ltm.pools.pool.create(name="exists", partition="Common")
    assert "transaction failed:01020066:3: The requested Pool (/Common/exists)" in \
        str(info.value)
    assert emu.dump() == before
    assert not mr.tm.ltm.nodes.node.exists(name="10.0.2.1", partition="Common")
    (txn,) = rest("GET", "/mgmt/tm/transaction").json()["items"]
    assert txn["state"] == "FAILED" and "01020066" in txn["failureReason"]


def test_transaction_raw_flow_commands_validate_only_and_expiry(emu, clock, rest):
    tid = rest("POST", "/mgmt/tm/transaction/", json={}).json()["transId"]
    hdr = {"X-F5-REST-Coordination-Id": str(tid)}
    cmd = rest("POST", "/mgmt/tm/ltm/pool/", headers=hdr,
               json={"name": "tp", "partition": "Common"}).json()
    assert (cmd["commandId"], cmd["evalOrder"]) == (1, 1)
    assert rest("POST", "/mgmt/tm/ltm/pool/", headers=hdr,
                json={"name": "x", "loadBalancingMode": "bogus"}).status_code == 400
    misuse = rest("POST", f"/mgmt/tm/transaction/{tid}/commands/1/members/", headers=hdr,
                  json={"name": "10.0.0.1:80", "partition": "Common"})
    assert misuse.status_code == 400 and "Found invalid command id" in misuse.json()["message"]
    listed = rest("GET", f"/mgmt/tm/transaction/{tid}/commands").json()["items"]
    assert [c["method"] for c in listed] == ["POST"]
    done = rest("PATCH", f"/mgmt/tm/transaction/{tid}",
                json={"state": "VALIDATING", "validateOnly": True})
    assert done.status_code == 200
    assert rest("GET", "/mgmt/tm/ltm/pool/~Common~tp").status_code == 404
    empty = rest("POST", "/mgmt/tm/transaction", json={}).json()["transId"]
    nothing = rest("PATCH", f"/mgmt/tm/transaction/{empty}", json={"state": "VALIDATING"})
    assert nothing.status_code == 404
    assert nothing.json()["message"] == "there is no command to commit in the transaction."
    stale = rest("POST", "/mgmt/tm/transaction", json={}).json()["transId"]
    clock.now += 121
    assert rest("GET", f"/mgmt/tm/transaction/{stale}").status_code == 404


def test_fail_next_commit_fails_once_and_changes_nothing(emu, mr):
    emu.fail_next_commit("01070734:3: Configuration error: injected")
    tx = mr.tm.transactions.transaction
    with pytest.raises(TransactionSubmitException, match="transaction failed:01070734"):
        with TransactionContextManager(tx) as api:
            api.tm.ltm.pools.pool.create(name="p1", partition="Common")
    assert not mr.tm.ltm.pools.pool.exists(name="p1", partition="Common")
    with TransactionContextManager(tx) as api:
        api.tm.ltm.pools.pool.create(name="p1", partition="Common")
    assert mr.tm.ltm.pools.pool.exists(name="p1", partition="Common")


# -- save, sync ----------------------------------------------------------------------------
def test_config_save_and_config_sync_are_recorded(emu, mr, rest):
    mr.tm.ltm.pools.pool.create(name="p1", partition="Common")
    assert emu.unsaved_changes and emu.saves == 0
    assert mr.tm.sys.config.exec_cmd("save").command == "save"
    assert emu.saves == 1 and not emu.unsaved_changes

    def sync_status() -> str:
        entries = rest("GET", "/mgmt/tm/cm/sync-status").json()["entries"]
        (nested,) = entries.values()
        return nested["nestedStats"]["entries"]["status"]["description"]

    assert sync_status() == "Changes Pending"
    mr.tm.cm.exec_cmd("run", utilCmdArgs="config-sync to-group dg1")
    assert emu.syncs == ["dg1"] and sync_status() == "In Sync"
    bad = http_error(lambda: mr.tm.cm.exec_cmd("run", utilCmdArgs="config-sync to-group dg9"))
    assert bad.status_code == 400 and "Device group (dg9) not found" in bad.json()["message"]


# -- AS3 -----------------------------------------------------------------------------------
def test_as3_declare_reflects_into_ltm_and_is_idempotent(emu, rest):
    assert rest("GET", "/mgmt/shared/appsvcs/declare").status_code == 204
    first = rest("POST", "/mgmt/shared/appsvcs/declare", json=AS3_DECL)
    assert first.status_code == 200
    assert [(r["tenant"], r["message"]) for r in first.json()["results"]] == [("T1", "success")]
    pool = rest("GET", "/mgmt/tm/ltm/pool/~T1~A1~web_pool",
                params={"expandSubcollections": "true"}).json()
    assert pool["monitor"].strip() == "/T1/A1/health"
    assert [m["fullPath"] for m in pool["membersReference"]["items"]] == [
        "/T1/192.0.2.10:80", "/T1/192.0.2.11:80"]
    assert rest("GET", "/mgmt/tm/ltm/node/~T1~192.0.2.10").status_code == 200
    again = rest("POST", "/mgmt/shared/appsvcs/declare", json=AS3_DECL).json()
    assert again["results"][0]["message"] == "no change"
    assert rest("GET", "/mgmt/shared/appsvcs/declare").json()["T1"] == AS3_DECL["T1"]
    deleted = rest("DELETE", "/mgmt/shared/appsvcs/declare/T1")
    assert deleted.status_code == 200
    assert rest("GET", "/mgmt/tm/auth/partition/T1").status_code == 404


def test_as3_invalid_declaration_is_422_with_schema_errors(emu, rest):
    bad = copy.deepcopy(AS3_DECL)
    del bad["T1"]["A1"]["web_pool"]["members"][0]["servicePort"]
    resp = rest("POST", "/mgmt/shared/appsvcs/declare", json=bad)
    assert resp.status_code == 422
    assert resp.json()["message"] == "declaration is invalid"
    assert resp.json()["errors"] == [
        "/T1/A1/web_pool/members/0: should have required property 'servicePort'"]
    assert rest("GET", "/mgmt/tm/auth/partition/T1").status_code == 404


def test_as3_partial_failure_is_207_and_rolls_back_the_failed_tenant(emu, rest):
    decl = copy.deepcopy(AS3_DECL)
    decl["T2"] = {"class": "Tenant", "A": {"class": "Application", "p": {
        "class": "Pool", "members": [{"servicePort": 80, "serverAddresses": ["192.0.2.10"]}]}}}
    resp = rest("POST", "/mgmt/shared/appsvcs/declare", json=decl)
    assert resp.status_code == 207
    by_tenant = {r["tenant"]: r for r in resp.json()["results"]}
    assert by_tenant["T1"]["code"] == 200
    assert by_tenant["T2"]["code"] == 422
    assert "0107176c" in by_tenant["T2"]["response"]
    assert rest("GET", "/mgmt/tm/ltm/pool/~T2~A~p").status_code == 404


def test_as3_async_task_polling_busy_and_sync_turning_async(emu, rest):
    emu.set_as3_delay(60, sync_timeout=0.05)
    submitted = rest("POST", "/mgmt/shared/appsvcs/declare?async=true", json=AS3_DECL)
    assert submitted.status_code == 202
    task_id = submitted.json()["id"]
    task = rest("GET", f"/mgmt/shared/appsvcs/task/{task_id}").json()
    assert task["results"][0]["message"] == "in progress"
    assert rest("POST", "/mgmt/shared/appsvcs/declare", json=AS3_DECL).status_code == 503
    emu.set_as3_delay(0)

    def final() -> Any:
        results = rest("GET", f"/mgmt/shared/appsvcs/task/{task_id}").json()["results"]
        return results if results[0]["code"] else None

    assert wait_for(final)[0]["message"] == "success"
    emu.set_as3_delay(60, sync_timeout=0.05)
    slow = rest("POST", "/mgmt/shared/appsvcs/declare", json=AS3_DECL)
    assert slow.status_code == 202 and slow.json()["selfLink"].endswith(slow.json()["id"])
    emu.set_as3_delay(0)
    assert rest("GET", "/mgmt/shared/appsvcs/task/none").status_code == 404


def test_as3_patch_tenant_scoped_calls_and_member_admin_state(emu, rest):
    decl = copy.deepcopy(AS3_DECL)
    decl["T2"] = {"class": "Tenant", "A": {"class": "Application", "p": {
        "class": "Pool", "members": [{"servicePort": 8080, "serverAddresses": ["192.0.2.20"],
                                      "adminState": "offline"}]}}}
    only_t2 = rest("POST", "/mgmt/shared/appsvcs/declare/T2", json=decl).json()
    assert [r["tenant"] for r in only_t2["results"]] == ["T2"]
    assert rest("GET", "/mgmt/tm/auth/partition/T1").status_code == 404
    member = rest("GET", "/mgmt/tm/ltm/pool/~T2~A~p/members/~T2~192.0.2.20:8080").json()
    assert (member["session"], member["state"]) == ("user-disabled", "user-down")
    assert rest("POST", "/mgmt/shared/appsvcs/declare", json=AS3_DECL).status_code == 200
    patched = rest("PATCH", "/mgmt/shared/appsvcs/declare", json=[
        {"op": "add", "path": "/T1/A1/web_pool/members/0/serverAddresses/-",
         "value": "192.0.2.12"}])
    assert patched.status_code == 200
    members = rest("GET", "/mgmt/tm/ltm/pool/~T1~A1~web_pool/members").json()["items"]
    assert [m["name"] for m in members] == ["192.0.2.10:80", "192.0.2.11:80", "192.0.2.12:80"]
    subset = rest("GET", "/mgmt/shared/appsvcs/declare/T2").json()
    assert "T2" in subset and "T1" not in subset


def test_as3_not_installed_answers_404(emu, rest):
    emu.set_as3_installed(False)
    resp = rest("POST", "/mgmt/shared/appsvcs/declare", json=AS3_DECL)
    assert resp.status_code == 404
    assert resp.json()["message"] == "Public URI path not registered: /shared/appsvcs/declare"


# -- faults and observation ----------------------------------------------------------------
def test_outage_refuses_connections_then_recovers_on_the_same_port(emu, mr):
    mr.tm.ltm.pools.pool.create(name="p1", partition="Common")
    port = emu.port
    emu.outage()
    with pytest.raises(requests.exceptions.ConnectionError):
        mr.tm.ltm.pools.get_collection()
    emu.recover()
    assert emu.port == port
    assert [p.name for p in mr.tm.ltm.pools.get_collection()] == ["p1"]


def test_fail_next_latency_and_request_counting(emu, mr):
    emu.clear_requests()
    emu.fail_next(2, status=503)
    for _ in range(2):
        assert http_error(mr.tm.ltm.pools.get_collection).status_code == 503
    emu.set_latency(0.01)
    assert mr.tm.ltm.pools.get_collection() == []
    emu.set_latency(0)
    assert emu.request_count("GET", "/mgmt/tm/ltm/pool") == 3
    assert [r.status for r in emu.requests] == [503, 503, 200]


def test_openssl_cli_certificates_verify(tmp_path):
    """The fallback used where the cryptography package is missing."""
    import shutil
    import socket
    import ssl

    from lbctl_testkit.emulators.bigip import certs

    if shutil.which("openssl") is None:
        pytest.skip(f"{SKIP_PREFIX}: openssl binary not found; install the Debian 'openssl' package")
    files = certs.CertFiles(tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "key")
    certs._with_openssl(files, ("127.0.0.1", "localhost"))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    client_ctx = ssl.create_default_context(cafile=str(files.ca))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with client_ctx.wrap_socket(socket.create_connection(listener.getsockname(), timeout=10),
                                    server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.send(b"x")
        thread.join(timeout=10)


def test_concurrent_clients_are_serialised(emu, rest):
    errors: list[int] = []

    def worker(i: int) -> None:
        for j in range(5):
            status = rest("POST", "/mgmt/tm/ltm/pool", json={
                "name": f"p{i}-{j}", "members": [f"10.1.{i}.{j}:80"]}).status_code
            if status != 200:
                errors.append(status)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(rest("GET", "/mgmt/tm/ltm/pool").json()["items"]) == 20
