"""The Consul emulator's KV store, sessions and locks, through py-consul over loopback."""

from __future__ import annotations

import threading

import consul
import pytest
import requests
from consul.exceptions import BadRequest, ClientError, NotFound



EMULATOR_SEED = 11


# ---------------------------------------------------------------- KV
def test_put_get_flags_and_index(cc):
    assert cc.kv.put("lbctl/leader", "node-a", flags=42) is True
    idx, item = cc.kv.get("lbctl/leader")
    assert item["Value"] == b"node-a" and item["Flags"] == 42 and item["LockIndex"] == 0
    assert int(idx) == item["ModifyIndex"] == item["CreateIndex"]
    assert "Session" not in item
    cc.kv.put("lbctl/leader", "node-b")
    idx2, item2 = cc.kv.get("lbctl/leader")
    assert item2["CreateIndex"] == item["CreateIndex"] and int(idx2) > int(idx) and item2["Flags"] == 0


def test_missing_key_is_404_with_index_headers(emu, cc):
    idx, item = cc.kv.get("nope/key")
    assert item is None and int(idx) >= 1
    r = requests.get(f"{emu.url}/v1/kv/nope/key", timeout=5)
    assert r.status_code == 404 and r.text == "" and int(r.headers["X-Consul-Index"]) >= 1


def test_empty_value_raw_and_keys(emu, cc):
    cc.kv.put("a/b", "")
    cc.kv.put("a/c/d", "x")
    cc.kv.put("a/c/e", "y")
    cc.kv.put("z", "1")
    assert cc.kv.get("a/b")[1]["Value"] is None
    r = requests.get(f"{emu.url}/v1/kv/a/c/d?raw", timeout=5)
    assert r.text == "x" and r.headers["Content-Type"] == "text/plain"
    assert cc.kv.get("a/", keys=True)[1] == ["a/b", "a/c/d", "a/c/e"]
    assert cc.kv.get("a/", keys=True, separator="/")[1] == ["a/b", "a/c/"]
    assert cc.kv.get("", keys=True, separator="/")[1] == ["a/", "z"]
    assert cc.kv.get("missing/", keys=True)[1] is None  # 404
    assert requests.get(f"{emu.url}/v1/kv/?keys", timeout=5).json() == ["a/b", "a/c/d", "a/c/e", "z"]


def test_recurse_index_is_the_prefix_max_and_counts_deletions(cc):
    cc.kv.put("p/1", "a")
    cc.kv.put("p/2", "b")
    cc.kv.put("q/1", "c")
    idx, items = cc.kv.get("p/", recurse=True)
    assert [i["Key"] for i in items] == ["p/1", "p/2"]
    assert int(idx) == max(i["ModifyIndex"] for i in items)
    cc.kv.delete("p/2")
    idx2, items = cc.kv.get("p/", recurse=True)
    assert [i["Key"] for i in items] == ["p/1"] and int(idx2) > int(idx)
    assert cc.kv.delete("p/", recurse=True) is True
    assert cc.kv.get("p/", recurse=True)[1] is None
    assert cc.kv.get("q/1")[1]["Value"] == b"c"


def test_cas_put_and_delete(cc):
    assert cc.kv.put("k", "v1", cas=0) is True
    assert cc.kv.put("k", "v2", cas=0) is False
    _, item = cc.kv.get("k")
    assert cc.kv.put("k", "v2", cas=item["ModifyIndex"] + 100) is False
    assert cc.kv.put("k", "v2", cas=item["ModifyIndex"]) is True
    _, item = cc.kv.get("k")
    assert cc.kv.delete("k", cas=item["ModifyIndex"] - 1) is False
    assert cc.kv.delete("k", cas=item["ModifyIndex"]) is True
    assert cc.kv.get("k")[1] is None


def test_conflicting_flags_size_limit_and_key_validation(emu, cc):
    with pytest.raises(BadRequest, match="Conflicting flags"):
        cc.kv.put("k", "v", cas=0, acquire="x")
    with pytest.raises(ClientError, match="413"):
        cc.kv.put("big", b"x" * (512 * 1024 + 1))
    assert cc.kv.put("ok", b"x" * (512 * 1024)) is True
    with pytest.raises(BadRequest, match="suspicious file extension '.json'"):
        cc.kv.put("lbctl/leader.json", "x")
    r = requests.put(f"{emu.url}/v1/kv//lead", data="x", timeout=5)
    assert r.status_code == 400 and "must not begin with a '/'" in r.text
    r = requests.put(f"{emu.url}/v1/kv/bad%20key", data="x", timeout=5)
    assert r.status_code == 400
    r = requests.delete(f"{emu.url}/v1/kv/a?recurse&cas=1", timeout=5)
    assert r.status_code == 400 and r.text.startswith("Conflicting flags: ")


def test_blocking_kv_get_wakes_on_that_key(emu, cc):
    cc.kv.put("watched", "1")
    idx, _ = cc.kv.get("watched")
    done, box = threading.Event(), {}
    threading.Thread(target=lambda: (box.update(r=cc.kv.get("watched", index=idx, wait="60s")), done.set()),
                     daemon=True).start()
    assert emu.wait_blocking(1, timeout=5)
    cc.kv.put("other", "x")  # another key: the watched key's index does not move
    assert not done.wait(0.1)
    cc.kv.put("watched", "2")
    assert done.wait(10), "the write did not wake the query"  # its 60 s wait is far past this
    new_idx, item = box["r"]
    assert int(new_idx) > int(idx) and item["Value"] == b"2"


# ---------------------------------------------------------------- sessions
def test_session_defaults_and_info(emu, cc):
    sid = cc.session.create()
    _, info = cc.session.info(sid)
    assert info["Node"] == "node-a" and info["Behavior"] == "release"
    assert info["LockDelay"] == 15 * 10**9 and info["NodeChecks"] == ["serfHealth"] and info["TTL"] == ""
    _, sessions = cc.session.list()
    assert [s["ID"] for s in sessions] == [sid]
    assert cc.session.info("00000000-0000-0000-0000-000000000000")[1] is None
    r = requests.put(f"{emu.url}/v1/session/create", json={"LockDelay": 5, "Checks": []}, timeout=5)
    _, info = cc.session.info(r.json()["ID"])
    assert info["LockDelay"] == 5 * 10**9 and info["NodeChecks"] == []
    sid = cc.session.create(lock_delay=120, checks=[], behavior="delete", ttl=15, name="lbctl")
    _, info = cc.session.info(sid)
    assert info["LockDelay"] == 60 * 10**9 and info["Behavior"] == "delete" and info["TTL"] == "15s"


def test_session_errors(emu, cc):
    with pytest.raises(NotFound, match="Session id 'nope' not found"):
        cc.session.renew("nope")
    assert cc.session.destroy("nope") is True
    r = requests.put(f"{emu.url}/v1/session/create", json={"TTL": "5s"}, timeout=5)
    assert r.status_code == 500 and "Invalid Session TTL" in r.text
    with pytest.raises(consul.ConsulException, match="Missing check 'nope' registration"):
        cc.session.create(checks=["nope"])
    with pytest.raises(consul.ConsulException, match='invalid session "bogus"'):
        cc.kv.put("lock", "x", acquire="bogus")


def test_session_ttl_expires_at_twice_the_ttl_and_renew_resets(emu, cc):
    sid = cc.session.create(ttl=10, checks=[])
    cc.kv.put("lock", "me", acquire=sid)
    emu.advance(15)
    renewed = cc.session.renew(sid)
    assert renewed["ID"] == sid
    emu.advance(19)  # 2 x TTL from the renewal is 20 s
    assert cc.session.info(sid)[1] is not None
    emu.advance(2)
    assert cc.session.info(sid)[1] is None
    assert "Session" not in cc.kv.get("lock")[1]


def test_locks_acquire_release_lock_delay(emu, cc):
    s1 = cc.session.create(checks=[], lock_delay=15)
    s2 = cc.session.create(checks=[], lock_delay=15)
    assert cc.kv.put("lbctl/leader", "a", acquire=s1) is True
    _, item = cc.kv.get("lbctl/leader")
    assert (item["Session"], item["LockIndex"]) == (s1, 1)
    assert cc.kv.put("lbctl/leader", "a2", acquire=s1) is True  # re-acquire: no new LockIndex
    assert cc.kv.get("lbctl/leader")[1]["LockIndex"] == 1
    assert cc.kv.put("lbctl/leader", "b", acquire=s2) is False
    assert cc.kv.put("lbctl/leader", "b", release=s2) is False
    assert cc.kv.put("lbctl/leader", "plain") is True  # locks are advisory
    assert cc.kv.get("lbctl/leader")[1]["Session"] == s1
    assert cc.kv.put("lbctl/leader", "a", release=s1) is True
    _, item = cc.kv.get("lbctl/leader")
    assert "Session" not in item and item["LockIndex"] == 1
    assert cc.kv.put("lbctl/leader", "b", acquire=s2) is True  # explicit release arms no lock-delay
    assert cc.kv.get("lbctl/leader")[1]["LockIndex"] == 2
    assert cc.session.destroy(s2) is True  # destroy releases and arms the lock-delay
    assert "Session" not in cc.kv.get("lbctl/leader")[1]
    assert cc.kv.put("lbctl/leader", "a", acquire=s1) is False
    emu.advance(14)
    assert cc.kv.put("lbctl/leader", "a", acquire=s1) is False
    emu.advance(2)
    assert cc.kv.put("lbctl/leader", "a", acquire=s1) is True


def test_behavior_delete_removes_held_keys(cc):
    sid = cc.session.create(checks=[], behavior="delete", lock_delay=0)
    assert cc.kv.put("eph/x", "1", acquire=sid)
    cc.session.destroy(sid)
    assert cc.kv.get("eph/x")[1] is None


def test_session_bound_to_a_check_dies_when_it_goes_critical(cc):
    cc.agent.service.register("lbctl", check={"ttl": "15s", "status": "passing"})
    sid = cc.session.create(checks=["serfHealth", "service:lbctl"])
    assert cc.kv.put("lbctl/leader", "me", acquire=sid)
    assert cc.agent.check.ttl_fail("service:lbctl") is True
    assert cc.session.info(sid)[1] is None
    assert "Session" not in cc.kv.get("lbctl/leader")[1]
    with pytest.raises(consul.ConsulException, match="Check 'service:lbctl' is in critical state"):
        cc.session.create(checks=["service:lbctl"])


def test_blocking_kv_wait_for_lock_release(emu, cc):
    holder = cc.session.create(checks=[], lock_delay=0)
    assert cc.kv.put("lbctl/leader", "a", acquire=holder)
    idx, _ = cc.kv.get("lbctl/leader")
    done, box = threading.Event(), {}
    threading.Thread(target=lambda: (box.update(r=cc.kv.get("lbctl/leader", index=idx, wait="5s")), done.set()),
                     daemon=True).start()
    assert emu.wait_blocking(1, timeout=5)
    cc.session.destroy(holder)
    assert done.wait(4)
    assert "Session" not in box["r"][1]
    other = cc.session.create(checks=[])
    assert cc.kv.put("lbctl/leader", "b", acquire=other) is True  # lock_delay=0: free at once
