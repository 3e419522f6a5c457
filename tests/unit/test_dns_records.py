"""The dns kind's pure part: its settings, a pool's ``dns`` key (inventory and Consul
Meta), the records a model publishes, ownership, keep-last and the record diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import config, guard, inventory, model
from lbctl.discovery import consul_model as cm
from lbctl.discovery import merge
from lbctl.errors import ConfigError
from lbctl.targets.dns import plan as dplan
from lbctl.targets.dns import records as rec
from lbctl.targets.dns.settings import DnsSettings

ZONE = "example.com."


def desired(dns=None, members=None, **pools) -> model.Desired:
    body = {"dns": dns or {"name": "www", "types": ["A", "AAAA", "SRV"], "port_name": "http"},
            "members": members if members is not None else [
                {"name": "web-1", "address": "10.0.0.1", "port": 8080},
                {"name": "web-2", "address": "2001:db8::2", "port": 8080, "weight": 5},
                {"name": "web-3", "address": "10.0.0.3", "port": 8081, "state": "backup"},
                {"name": "web-4", "address": "10.0.0.4", "port": 8080, "state": "drain"}]}
    return inventory.from_raw({"pools": {"web": body, **pools}})


def names(d: model.Desired, owner: str = "lbctl") -> dict[str, rec.Name]:
    return rec.wanted(d, ZONE, owner, 30)


def state(d: model.Desired, owner: str = "lbctl") -> rec.State:
    return rec.flatten(names(d, owner), 30)


# -- settings --------------------------------------------------------------------------
def load(tmp_path: Path, body: str) -> config.Config:
    (tmp_path / "lbctl.yml").write_text(f"state_dir: state\ntargets:\n  zone:\n    kind: dns\n{body}")
    return config.load(tmp_path / "lbctl.yml")


MINIMAL = "    server: 192.0.2.53\n    zone: Example.COM\n    key_name: lbctl-key\n    key_secret_env: TSIG\n"


def test_settings_defaults_and_every_key(tmp_path):
    t = load(tmp_path, MINIMAL).targets["zone"]
    assert t.kind == "dns" and t.shared is True
    assert t.options == DnsSettings(server="192.0.2.53", zone="example.com.", key_name="lbctl-key.",
                                    key_secret_env="TSIG")
    assert (t.options.port, t.options.ttl, t.options.owner, t.options.key_algorithm) == (53, 30, "lbctl", "hmac-sha256")
    t = load(tmp_path, "    server: '::1'\n    port: 5353\n    zone: example.org.\n    key_name: k.example.\n"
                       "    key_algorithm: hmac-sha512\n    key_secret_file: tsig.key\n    ttl: 1m\n    owner: blue\n"
                       "    timeout: 2s\n    retries: 5\n    backoff: 0\n").targets["zone"]
    o = t.options
    assert (o.server, o.port, o.zone, o.key_name, o.key_algorithm, o.key_secret_file, o.ttl, o.owner, o.timeout_ms,
            o.retries, o.backoff_ms) == ("::1", 5353, "example.org.", "k.example.", "hmac-sha512",
                                         tmp_path / "tsig.key", 60, "blue", 2000, 5, 0)


@pytest.mark.parametrize("body, error", [
    ("    zone: example.com\n    key_name: k\n    key_secret_env: T\n", "targets.zone.server: is required"),
    ("    server: dns.example.com\n    zone: example.com\n    key_name: k\n    key_secret_env: T\n",
     "targets.zone.server: must be an IPv4 or IPv6 address"),
    (MINIMAL.replace("Example.COM", "exa mple.com"), "targets.zone.zone: must be an RFC 1123 host name"),
    (MINIMAL.replace("    key_secret_env: TSIG\n", ""), "needs exactly one of key_secret_env"),
    (MINIMAL + "    key_secret_file: f\n", "needs exactly one of key_secret_env"),
    (MINIMAL + "    ttl: 1500ms\n", "targets.zone.ttl: must be whole seconds"),
    (MINIMAL + "    key_algorithm: hmac-md5\n", "targets.zone.key_algorithm: must be one of hmac-sha256"),
    (MINIMAL + "    owner: 'a b'\n", "targets.zone.owner: must be a name"),
    (MINIMAL + "    config: /etc/x\n", "targets.zone: unknown key"),
])
def test_settings_errors_name_the_key(tmp_path, body, error):
    with pytest.raises(ConfigError, match=error) as info:
        load(tmp_path, body)
    assert "\n" not in str(info.value)


def test_the_secret_is_read_when_needed_and_never_kept(tmp_path, monkeypatch):
    o = load(tmp_path, MINIMAL).targets["zone"].options
    with pytest.raises(ConfigError, match=r"^targets.zone.key_secret_env: the environment variable TSIG is not set$"):
        o.secret("targets.zone")
    monkeypatch.setenv("TSIG", "c2VjcmV0")
    assert o.secret("targets.zone") == "c2VjcmV0" and "c2VjcmV0" not in repr(o)


# -- a pool's dns key --------------------------------------------------------------------
def test_the_dns_key_of_a_pool():
    pool = desired().pools[0]
    assert pool.dns == model.DnsName("www", ("A", "AAAA", "SRV"), "http")
    pool = inventory.from_raw({"pools": {"p": {"dns": {"name": "API.eu"}}}}).pools[0]
    assert pool.dns == model.DnsName("api.eu", ("A", "AAAA"), None)  # default types, lower case


@pytest.mark.parametrize("dns, error", [
    ({"types": ["A"]}, r"pools.web.dns.name: is required"),
    ({"name": "www.example.com."}, r"pools.web.dns.name: must be a name relative to the zone"),
    ({"name": "w w"}, r"pools.web.dns.name: must be a name"),
    ({"name": "_x"}, r"pools.web.dns.name: must be a name"),
    ({"name": "a" * 64}, r"pools.web.dns.name: must be a name"),
    ({"name": "www", "types": ["MX"]}, r"pools.web.dns.types: must be one of A, AAAA, SRV, CNAME"),
    ({"name": "www", "types": []}, r"pools.web.dns.types: must name each record type once"),
    ({"name": "www", "types": ["A", "A"]}, r"pools.web.dns.types: must name each record type once"),
    ({"name": "www", "types": ["CNAME", "A"]}, r"CNAME stands alone"),
    ({"name": "@", "types": ["CNAME"]}, r"the zone's apex cannot be a CNAME"),
    ({"name": "www", "types": ["SRV"]}, r"pools.web.dns.port_name: is required for SRV"),
    ({"name": "www", "types": ["SRV"], "port_name": "ht--tp"}, r"pools.web.dns.port_name: must be a service name"),
    ({"name": "www", "ttl": 5}, r"pools.web.dns: unknown key"),
])
def test_bad_dns_keys_are_one_line_errors(dns, error):
    with pytest.raises(ConfigError, match=error) as info:
        desired(dns)
    assert "\n" not in str(info.value)


def test_dns_is_not_a_pool_default():
    with pytest.raises(ConfigError, match="defaults.pool: unknown key 'dns'"):
        inventory.from_raw({"defaults": {"pool": {"dns": {"name": "www"}}}, "pools": {}})


def consul_entry(sid: str, meta: dict, address: str = "10.0.0.5", checks=("passing",)) -> dict:
    return {"Node": {"Node": "n1", "Address": "10.0.0.1"},
            "Service": {"ID": sid, "Service": "web", "Address": address, "Port": 80, "Meta": meta},
            "Checks": [{"CheckID": f"c{i}", "Status": s} for i, s in enumerate(checks)]}


def service(entries, inventory_pool=None) -> tuple[model.Pool | None, list[str]]:
    parts = inventory.parts({"pools": {"web": inventory_pool}} if inventory_pool else {})
    return merge.service_pool(parts, "web", entries, cm.Policy())


def test_consul_meta_publishes_a_name():
    pool, problems = service([consul_entry("web-1", {"lb-dns-name": "www", "lb-dns-types": "A,SRV",
                                                      "lb-dns-port-name": "http"})])
    assert problems == [] and pool.dns == model.DnsName("www", ("A", "SRV"), "http")
    # over the inventory's mapping: the Meta keys it sets win, the others stay
    pool, problems = service([consul_entry("web-1", {"lb-dns-types": "A"})], {"dns": {"name": "shop"}})
    assert problems == [] and pool.dns == model.DnsName("shop", ("A",), None)


@pytest.mark.parametrize("meta", [
    {"lb-dns-name": "www.evil.org."}, {"lb-dns-name": "www\nevil IN A 6.6.6.6"}, {"lb-dns-name": "a;b"},
    {"lb-dns-name": "www", "lb-dns-types": "A,TXT"}, {"lb-dns-name": "www", "lb-dns-types": "SRV"},
    {"lb-dns-name": "www", "lb-dns-types": "SRV", "lb-dns-port-name": "_http._tcp.evil"},
    {"lb-dns-name": "@", "lb-dns-types": "CNAME"}, {"lb-dns-name": 7}, {"lb-dns-name": "x" * 300},
])
def test_hostile_meta_is_ignored_and_reported(meta):
    """A bad value leaves every lb-* option out (the pool is published as the inventory says: here not at
    all), with one line naming it; nothing of it reaches a record."""
    pool, problems = service([consul_entry("web-1", meta)])
    assert pool is not None and pool.dns is None
    assert problems[-1].startswith("consul service web: lb-* meta options ignored: consul service web.dns.")
    assert all("\n" not in p for p in problems)  # (an unsafe value is also dropped from the member's meta)


# -- the records ----------------------------------------------------------------------------
def test_records_of_a_pool():
    s = state(desired())
    assert s["www.example.com.", "A"].rdatas == ("10.0.0.1",)  # backup and drain left out
    assert s["www.example.com.", "AAAA"].rdatas == ("2001:db8::2",)
    assert s["_http._tcp.www.example.com.", "SRV"].rdatas == (
        "10 1 8080 web-1.www.example.com.", "10 5 8080 web-2.www.example.com.", "20 1 8081 web-3.www.example.com.")
    assert s["web-3.www.example.com.", "A"].rdatas == ("10.0.0.3",)
    assert ("web-4.www.example.com.", "A") not in s  # draining: not published at all
    assert {r.ttl for r in s.values()} == {30}
    reg = s["_lbctl.www.example.com.", "TXT"].rdatas
    assert '"heritage=lbctl,lbctl/owner=lbctl,lbctl/pool=web"' in reg and '"lbctl/rrset=SRV/_http._tcp"' in reg
    assert rec.parse(rec.state_text(s), "x") == s  # the text form round-trips


def test_backup_members_answer_only_when_no_primary_serves():
    d = desired({"name": "www", "types": ["A"]}, [
        {"name": "a", "address": "10.0.0.1", "port": 80, "state": "maint"},
        {"name": "b", "address": "10.0.0.2", "port": 80, "state": "backup"},
        {"name": "c", "address": "10.0.0.3", "port": 80, "state": "backup"}])
    assert state(d)["www.example.com.", "A"].rdatas == ("10.0.0.2", "10.0.0.3")


def test_host_name_members_are_a_cname_or_refused():
    d = desired({"name": "www", "types": ["CNAME"]}, [{"name": "a", "address": "lb1.example.net", "port": 80}])
    assert state(d)["www.example.com.", "CNAME"].rdatas == ("lb1.example.net.",)
    with pytest.raises(ConfigError, match=r"pool web \(www.example.com.\): member address lb1.example.net is a host "
                                          r"name; A/AAAA records hold IP addresses"):
        names(desired({"name": "www"}, [{"name": "a", "address": "lb1.example.net", "port": 80}]))
    srv = desired({"name": "www", "types": ["SRV"], "port_name": "http"},
                  [{"name": "a", "address": "lb1.example.net", "port": 80}])  # SRV targets are host names anyway
    assert state(srv)["_http._tcp.www.example.com.", "SRV"].rdatas == ("10 1 80 lb1.example.net.",)
    with pytest.raises(ConfigError, match="a CNAME points at one host name"):
        names(desired({"name": "www", "types": ["CNAME"]}, [{"name": "a", "address": "lb1.example.net", "port": 80},
                                                           {"name": "b", "address": "lb2.example.net", "port": 80}]))


def test_two_pools_cannot_publish_one_name():
    with pytest.raises(ConfigError, match=r"^pools api and web both publish www.example.com."):
        names(desired(api={"dns": {"name": "www"}}))


def test_member_labels_stay_apart():
    labels = rec.member_labels(["web_1", "web.1", "Web-2"])
    assert labels["Web-2"] == "web-2" and labels["web_1"] != labels["web.1"]
    assert all(label.startswith("web-1-") for n, label in labels.items() if n != "Web-2")


def test_served_is_each_pools_answers():
    s = state(desired())
    assert rec.served(s) == guard.Served(frozenset(), {"web": frozenset({"10.0.0.1", "2001:db8::2"})})


# -- ownership and the diff -------------------------------------------------------------------
def zone_with(*rrsets: rec.RRset) -> rec.State:
    base = [rec.RRset(ZONE, "SOA", 300, ("ns1.example.com. hostmaster.example.com. 1 3600 600 86400 30",)),
            rec.RRset("mail.example.com.", "A", 300, ("192.0.2.25",))]
    return {r.key: r for r in (*base, *rrsets)}


def test_a_first_plan_adds_everything_with_absent_prerequisites():
    p = dplan.plan(zone_with(), names(desired()), "lbctl", 30)
    assert all(op.old is None and op.new is not None for op in p.ops) and p.before == {}
    assert "+ www.example.com. A 10.0.0.1" in p.summary and {op.name for op in p.ops} == {"www.example.com."}


def test_a_plan_against_its_own_records_is_empty():
    current = state(desired())
    assert dplan.plan(zone_with(*current.values()), names(desired()), "lbctl", 30).noop


def test_a_member_leaving_changes_only_its_rrsets():
    before = state(desired())
    members = [{"name": "web-1", "address": "10.0.0.1", "port": 8080},
               {"name": "web-5", "address": "10.0.0.5", "port": 8080}]
    p = dplan.plan(zone_with(*before.values()), names(desired(members=members)), "lbctl", 30)
    changed = {op.key for op in p.ops}
    assert ("www.example.com.", "A") in changed and ("mail.example.com.", "A") not in changed
    a = next(op for op in p.ops if op.key == ("www.example.com.", "A"))
    assert a.old == before["www.example.com.", "A"]  # the prerequisite: what was read
    assert "+ www.example.com. A 10.0.0.5" in p.summary
    assert ("web-2.www.example.com.", "AAAA") in changed and next(
        op for op in p.ops if op.key == ("web-2.www.example.com.", "AAAA")).new is None
    assert "- www.example.com. AAAA 2001:db8::2 (cached answers may still reach it for up to 30s)" in p.summary


def test_a_name_owned_by_another_owner_is_an_error():
    theirs = state(desired(), owner="blue")
    with pytest.raises(ConfigError, match=r"^www.example.com. \(pool web\) is owned by another lbctl "
                                          r"\(owner id 'blue', TXT _lbctl.www.example.com.\); this target's owner is "
                                          r"'lbctl'$"):
        dplan.plan(zone_with(*theirs.values()), names(desired()), "lbctl", 30)


def test_records_lbctl_did_not_create_are_never_touched():
    foreign = rec.RRset("www.example.com.", "A", 300, ("192.0.2.80",))
    with pytest.raises(ConfigError, match=r"^www.example.com. A exists in the zone and was not created by lbctl"):
        dplan.plan(zone_with(foreign), names(desired()), "lbctl", 30)
    txt = rec.RRset("_lbctl.www.example.com.", "TXT", 300, ('"v=spf1 -all"',))
    with pytest.raises(ConfigError, match="holds TXT records lbctl did not write"):
        dplan.plan(zone_with(txt), names(desired()), "lbctl", 30)
    mx = rec.RRset("www.example.com.", "MX", 300, ("10 mail.example.com.",))  # another type: left alone
    p = dplan.plan(zone_with(mx), names(desired()), "lbctl", 30)
    assert mx.key not in {op.key for op in p.ops}
    cname = desired({"name": "www", "types": ["CNAME"]}, [{"name": "a", "address": "lb.example.net", "port": 80}])
    with pytest.raises(ConfigError, match=r"a CNAME cannot share its name with other records, and the zone has MX"):
        dplan.plan(zone_with(mx), names(cname), "lbctl", 30)


def test_names_no_longer_published_are_deleted_with_their_ownership():
    current = state(desired())
    other = rec.RRset("mail.example.com.", "A", 300, ("192.0.2.25",))
    p = dplan.plan(zone_with(*current.values()), names(desired({"name": "shop", "types": ["A"]})), "lbctl", 30)
    deleted = {op.key for op in p.ops if op.new is None}
    assert deleted == set(current) and other.key not in {op.key for op in p.ops}


def test_a_name_no_member_serves_keeps_its_last_serving_records():
    current = state(desired())
    down = [{"name": "web-1", "address": "10.0.0.1", "port": 8080, "state": "maint"}]
    p = dplan.plan(zone_with(*current.values()), names(desired(members=down)), "lbctl", 30)
    assert p.after["www.example.com.", "A"] == current["www.example.com.", "A"]
    assert p.after["_http._tcp.www.example.com.", "SRV"] == current["_http._tcp.www.example.com.", "SRV"]
    assert p.after["web-1.www.example.com.", "A"] == current["web-1.www.example.com.", "A"]
    assert p.noop and p.summary[-1].startswith("= www.example.com.: no member of pool web serves; keeping the last "
                                               "serving records (10.0.0.1, 2001:db8::2, SRV 10 1 8080")
    # with no records yet there is nothing to keep: the name is published empty
    first = dplan.plan(zone_with(), names(desired(members=down)), "lbctl", 30)
    assert [op.key for op in first.ops] == [("_lbctl.www.example.com.", "TXT")]


def test_the_guard_sees_names_as_pools():
    before = state(desired())
    d = desired(members=[{"name": "web-1", "address": "10.0.0.1", "port": 8080}])
    p = dplan.plan(zone_with(*before.values()), names(d), "lbctl", 30)
    problems = guard.refusals(rec.served(p.before), rec.served(p.after), guard.Policy(max_removal=0.4))
    assert problems == ["pool web: 1 of 2 serving members would stop serving (2001:db8::2), more than max_removal 40%"]
    gone = dplan.plan(zone_with(*before.values()), {}, "lbctl", 30)
    assert guard.refusals(rec.served(gone.before), rec.served(gone.after), guard.Policy()) == [
        "it would leave nothing to serve (no listeners, no pools: an empty or truncated source?)"]


def test_an_ownership_record_never_claims_other_types():
    """Even a registry under lbctl's own owner id that lists an MX or NS does not make lbctl touch it."""
    reg = rec.RRset("_lbctl.www.example.com.", "TXT", 30, ('"heritage=lbctl,lbctl/owner=lbctl,lbctl/pool=web"',
                                                          '"lbctl/rrset=MX/@"', '"lbctl/rrset=NS/@"', '"lbctl/rrset=A/@"'))
    mx = rec.RRset("www.example.com.", "MX", 300, ("10 mail.example.com.",))
    a = rec.RRset("www.example.com.", "A", 30, ("10.0.0.9",))
    p = dplan.plan(zone_with(reg, mx, a), {}, "lbctl", 30)
    assert {op.key for op in p.ops} == {reg.key, a.key}
