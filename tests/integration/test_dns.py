"""The dns kind against a real BIND 9 (Debian's ``named``): apply, verify, plan, status
and rollback through the command line; ownership; a concurrent writer (the
compare-and-swap fails, lbctl re-reads and retries); the guard; a refusing, a
wrongly keyed and an unreachable server."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from lbctl import config, inventory
from lbctl.cli import cli
from lbctl.errors import ApplyError
from lbctl.targets.dns import wire
from lbctl.targets.dns.target import DnsTarget
from lbctl_testkit.support import free_port
from lbctl_testkit.support.named import READER_KEY, SECRET, requires_named, running_named

pytestmark = requires_named
WWW = "www.example.com."


def members(*specs) -> list[dict]:
    """``("a", "10.0.0.1")`` or ``("a", "10.0.0.1", "backup")``."""
    return [{"name": s[0], "address": s[1], "port": 8080, **({"state": s[2]} if len(s) > 2 else {})} for s in specs]


class Zone:
    """A named, an inventory and an lbctl.yml with one dns target ``zone``."""

    def __init__(self, tmp_path, named, **target):
        self.dir, self.named = tmp_path, named
        self.config_path = tmp_path / "lbctl.yml"
        self.settings = {"source": {"inventory": "inventory.yml"}, "state_dir": "state",
                         "targets": {"zone": named.target_config(**target)}}
        self.config_path.write_text(yaml.safe_dump(self.settings))

    def inventory(self, spec, dns=None) -> None:
        pool = {"dns": dns or {"name": "www", "types": ["A", "SRV"], "port_name": "http"}, "members": spec}
        (self.dir / "inventory.yml").write_text(yaml.safe_dump({"pools": {"web": pool}}))

    def run(self, *args: str):
        return CliRunner().invoke(cli, [*args, "-c", str(self.config_path)])

    def target(self, **kw) -> DnsTarget:
        return DnsTarget(config.load(self.config_path).targets["zone"], **kw)

    def desired(self):
        return inventory.load(self.dir / "inventory.yml")

    def a(self) -> tuple[str, ...]:
        return self.named.answers(WWW, "A")[0]


@pytest.fixture
def zone(tmp_path, monkeypatch):
    monkeypatch.setenv("LBCTL_TEST_TSIG", SECRET)
    server_dir = tmp_path / "named"
    server_dir.mkdir()
    with running_named(server_dir) as named:
        yield Zone(tmp_path, named)


def one_line_error(result, *texts: str) -> str:
    assert result.exit_code == 1, result.output
    line = result.output
    assert line.startswith("lbctl: error: ") and line.count("\n") == 1, line
    for text in texts:
        assert text in line, line
    assert SECRET not in line
    return line


def test_apply_verify_plan_status_and_ttl(zone):
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"), ("web-3", "10.0.0.3", "backup")))
    plan = zone.run("plan")
    assert plan.exit_code == 2 and f"+ {WWW} A 10.0.0.1\n" in plan.output
    serial = zone.named.serial()
    result = zone.run("apply")
    assert result.exit_code == 0 and "zone: applied zone example.com." in result.output, result.output
    assert zone.named.answers(WWW, "A") == (("10.0.0.1", "10.0.0.2"), 30)  # the TTL lbctl set
    assert zone.named.answers(f"_http._tcp.{WWW}", "SRV")[0] == (
        "10 1 8080 web-1.www.example.com.", "10 1 8080 web-2.www.example.com.", "20 1 8080 web-3.www.example.com.")
    assert zone.named.answers("mail.example.com.", "A")[0] == ("192.0.2.25",)  # not lbctl's: untouched
    assert zone.named.serial() == serial + 1  # one UPDATE: one serial
    assert zone.run("plan").output == "zone example.com. on 127.0.0.1:%d: no changes\n" % zone.named.port
    status = zone.run("status")
    assert status.exit_code == 0 and f"serial {serial + 1}, 1 names owned by lbctl: {WWW}" in status.output
    assert SECRET not in status.output
    zone.settings["targets"]["zone"]["ttl"] = "1m"  # a new TTL: every record lbctl owns is rewritten
    zone.config_path.write_text(yaml.safe_dump(zone.settings))
    assert f"~ {WWW} A ttl 30 -> 60\n" in zone.run("plan").output
    assert zone.run("apply").exit_code == 0 and zone.named.answers(WWW, "A") == (("10.0.0.1", "10.0.0.2"), 60)


def test_members_come_and_go_drain_and_weight(zone):
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    assert zone.run("apply").exit_code == 0
    spec = members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2", "drain"), ("web-4", "10.0.0.4"))
    spec[0]["weight"] = 7
    zone.inventory(spec)
    plan = zone.run("plan").output
    assert f"- {WWW} A 10.0.0.2 (cached answers may still reach it for up to 30s)" in plan
    assert zone.run("apply").exit_code == 0
    assert zone.a() == ("10.0.0.1", "10.0.0.4")
    assert zone.named.answers(f"_http._tcp.{WWW}", "SRV")[0] == (
        "10 1 8080 web-4.www.example.com.", "10 7 8080 web-1.www.example.com.")
    assert zone.named.answers(f"web-2.{WWW}", "A")[0] == ()  # its target record went with it


def test_rollback_restores_the_previous_record_set(zone):
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    assert zone.run("apply").exit_code == 0
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-3", "10.0.0.3")))
    assert zone.run("apply").exit_code == 0 and zone.a() == ("10.0.0.1", "10.0.0.3")
    result = zone.run("rollback")
    assert result.exit_code == 0 and "restored backup" in result.output, result.output
    assert zone.a() == ("10.0.0.1", "10.0.0.2")


def test_a_name_owned_by_another_owner_is_refused_and_untouched(zone):
    zone.inventory(members(("web-1", "10.0.0.1")))
    zone.settings["targets"]["zone"]["owner"] = "blue"
    zone.config_path.write_text(yaml.safe_dump(zone.settings))
    assert zone.run("apply").exit_code == 0
    zone.settings["targets"]["zone"]["owner"] = "green"
    zone.config_path.write_text(yaml.safe_dump(zone.settings))
    zone.inventory(members(("web-9", "10.0.0.9")))
    serial = zone.named.serial()
    one_line_error(zone.run("apply"), "www.example.com. (pool web) is owned by another lbctl (owner id 'blue'")
    assert zone.a() == ("10.0.0.1",) and zone.named.serial() == serial


def test_records_lbctl_did_not_create_are_refused(zone):
    assert zone.named.update(("add", WWW, "A", 300, ["192.0.2.80"])) == 0
    zone.inventory(members(("web-1", "10.0.0.1")))
    one_line_error(zone.run("apply"), "www.example.com. A exists in the zone and was not created by lbctl")
    assert zone.a() == ("192.0.2.80",)


def test_a_concurrent_writer_makes_the_update_fail_whole_then_lbctl_rereads_and_retries(zone):
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    assert zone.run("apply").exit_code == 0
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-3", "10.0.0.3")))
    slept = []
    target = zone.target(sleep=slept.append)
    change = target.plan(zone.desired())
    # between lbctl's read and its UPDATE, someone else changes an RRset lbctl owns
    assert zone.named.update(("add", WWW, "A", 30, ["10.0.0.66"])) == 0
    checkpoint = target.apply(change)
    target.verify(checkpoint.change)
    assert slept == [0.2]  # one conflict, one backoff, one re-plan
    assert zone.a() == ("10.0.0.1", "10.0.0.3")  # the re-plan took the foreign record out as well
    assert len(change.detail.updates) == 1  # the one UPDATE that went through (the refused one applied nothing)


def test_a_writer_that_always_wins_leaves_nothing_half_done(zone, monkeypatch):
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    assert zone.run("apply").exit_code == 0
    zone.inventory(members(("web-3", "10.0.0.3"), ("web-4", "10.0.0.4")))
    n = iter(range(100, 200))
    read = wire.read

    def read_then_meddle(server):  # right after each of lbctl's reads, another writer changes www's A records
        found = read(server)
        zone.named.update(("add", WWW, "A", 30, [f"10.0.1.{next(n)}"]))
        return found
    monkeypatch.setattr(wire, "read", read_then_meddle)
    target = zone.target(sleep=lambda _: None)
    change = target.plan(zone.desired())
    with pytest.raises(ApplyError, match=r"^zone: the records changed since lbctl read them \(\w+\); nothing was "
                                         r"applied; gave up after 3 retries$"):
        target.apply(change)
    have = zone.a()  # lbctl's records and the other writer's, never a part of lbctl's change
    assert set(have) >= {"10.0.0.1", "10.0.0.2"} and not set(have) & {"10.0.0.3", "10.0.0.4"}
    assert zone.named.answers(f"web-3.{WWW}", "A")[0] == ()


def test_the_guard_refuses_big_removals_and_keeps_the_last_serving_records(zone):
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2"), ("web-3", "10.0.0.3")))
    assert zone.run("apply").exit_code == 0
    zone.inventory(members(("web-1", "10.0.0.1")))
    one_line_error(zone.run("apply"), "pool web: 2 of 3 serving members would stop serving", "max_removal 50%")
    assert zone.a() == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert zone.run("apply", "--force").exit_code == 0 and zone.a() == ("10.0.0.1",)
    zone.inventory(members(("web-1", "10.0.0.1", "maint")))  # nothing serves: the last answers stay
    plan = zone.run("plan")
    assert plan.exit_code == 0 and (f"lbctl: warning: zone: {WWW}: no member of pool web serves; keeping the last "
                                    "serving records (10.0.0.1, SRV 10 1 8080 web-1.www.example.com.)") in plan.output
    assert zone.run("apply").exit_code == 0 and zone.a() == ("10.0.0.1",)
    (zone.dir / "inventory.yml").write_text(yaml.safe_dump({"pools": {"web": {"members": []}}}))
    one_line_error(zone.run("apply"), "it would leave nothing to serve")
    assert zone.a() == ("10.0.0.1",)


def test_a_bad_tsig_key_is_one_line_and_changes_nothing(zone, monkeypatch):
    zone.inventory(members(("web-1", "10.0.0.1")))
    serial = zone.named.serial()
    monkeypatch.setenv("LBCTL_TEST_TSIG", "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==")
    one_line_error(zone.run("apply"), "refused TSIG key lbctl-key.", "BadSignature")
    monkeypatch.setenv("LBCTL_TEST_TSIG", "not base64!")
    one_line_error(zone.run("apply"), "the TSIG secret of key lbctl-key. is not base64")
    assert zone.named.serial() == serial and zone.a() == ()


def test_a_key_that_may_not_update_gets_refused(zone):
    zone.settings["targets"]["zone"]["key_name"] = READER_KEY
    zone.config_path.write_text(yaml.safe_dump(zone.settings))
    zone.inventory(members(("web-1", "10.0.0.1")))
    one_line_error(zone.run("apply"), "answered the UPDATE with REFUSED", "nothing was applied")
    assert zone.a() == ()


def test_an_unreachable_server_is_one_line(zone):
    zone.settings["targets"]["zone"]["port"] = free_port()
    zone.settings["targets"]["zone"]["timeout"] = "1s"
    zone.config_path.write_text(yaml.safe_dump(zone.settings))
    zone.inventory(members(("web-1", "10.0.0.1")))
    one_line_error(zone.run("apply"), "cannot reach the primary 127.0.0.1:", "Connection refused")
    status = zone.run("status")
    assert "not reachable: cannot reach the primary" in status.output


def test_watch_with_consul_a_critical_member_leaves_the_rrset(zone):
    """``lbctl watch`` from the Consul emulator: the name comes from the lb-dns-* Meta keys;
    an instance going critical leaves the A RRset, and coming back puts it back."""
    import os
    import signal
    import subprocess
    import sys

    from lbctl_testkit.emulators.consul import ConsulEmulator
    from lbctl_testkit.support import wait_until

    with ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0) as consul:
        meta = {"lb-dns-name": "www", "lb-dns-types": "A"}
        for i in (1, 2, 3):
            consul.add_service("web", service_id=f"web-{i}", address=f"10.0.0.{i}", port=80, meta=meta)
        consul.add_service("evil", service_id="evil-1", address="10.0.0.66", port=80,
                           meta={"lb-dns-name": "x.evil.org. 0 IN A 6.6.6.6", "lb-dns-types": "A"})
        settings = {**zone.settings, "source": {"consul": {"address": f"127.0.0.1:{consul.port}",
                                                           "services": ["web", "evil"],
                                                           "wait": "5s", "min_query_interval": "10ms"}},
                    "watch": {"min_wait": "0s", "max_wait": "1s", "retry_max": "1s"}}
        zone.config_path.write_text(yaml.safe_dump(settings))
        log = zone.dir / "watch.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "lbctl", "watch", "-c", str(zone.config_path)],
                                    stdout=out, stderr=out, start_new_session=True, env=os.environ.copy())
        try:
            wait_until(lambda: zone.a() == ("10.0.0.1", "10.0.0.2", "10.0.0.3"), 30, "the three addresses")
            consul.set_service_health("web-2", "critical")
            wait_until(lambda: zone.a() == ("10.0.0.1", "10.0.0.3"), 30, "web-2 to leave the RRset")
            consul.set_service_health("web-2", "passing")
            wait_until(lambda: zone.a() == ("10.0.0.1", "10.0.0.2", "10.0.0.3"), 30, "web-2 to come back")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        assert code == 0, log.read_text()
        assert SECRET not in log.read_text()
        assert "consul service evil: lb-* meta options ignored: consul service evil.dns.name: must be" in log.read_text()
        status = zone.run("status").output  # the hostile name published nothing
        assert f"1 names owned by lbctl: {WWW}" in status and zone.named.answers("x.evil.org.", "A")[0] == ()


def test_the_ansible_roles_apply_module_drives_a_dns_target(zone, tmp_path):
    """The role's one-shot apply (library/lbctl_apply.py, as tasks/configure.yml runs it) on a
    dns target: check mode plans and changes nothing, then apply changes, then nothing is left."""
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from lbctl_testkit.support import SKIP_PREFIX

    playbook_bin = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or shutil.which(
        "ansible-playbook")
    if playbook_bin is None:
        pytest.skip(f"{SKIP_PREFIX}: ansible-playbook not found; pip install '.[test]' (ansible-core)")
    root = Path(__file__).resolve().parents[2]
    lbctl_bin = tmp_path / "lbctl"
    lbctl_bin.write_text(f"#!/bin/sh\nexec {sys.executable} -m lbctl \"$@\"\n")
    lbctl_bin.chmod(0o755)
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "apply", "lbctl_apply": {"lbctl": str(lbctl_bin), "config": str(zone.config_path)},
         "register": "out"}, {"ansible.builtin.debug": {"var": "out"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = {**os.environ, "ANSIBLE_LIBRARY": str(root / "ansible" / "roles" / "lbctl" / "library"),
           "ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible" / "tmp"),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(root), str(root / "testkit"), os.environ.get("PYTHONPATH", "")])}

    def play_once(*args: str) -> tuple[int, str]:
        """The number of changed tasks in the PLAY RECAP, and the output."""
        proc = subprocess.run([playbook_bin, "-i", "localhost,", "-c", "local", "-e",
                               "ansible_python_interpreter={{ ansible_playbook_python }}", str(tmp_path / "play.yml"), *args],
                              capture_output=True, text=True, env=env, timeout=240)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        return int(re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M).group(1)), proc.stdout

    changed, output = play_once("--check")
    assert changed == 1 and f"+ {WWW} A 10.0.0.1" in output and zone.a() == ()
    assert play_once()[0] == 1 and zone.a() == ("10.0.0.1", "10.0.0.2")
    assert play_once()[0] == 0


def test_a_change_too_big_for_one_message_goes_in_whole_names(zone):
    """A DNS message holds at most 65,535 bytes: 400 names at once take more than one UPDATE,
    each of whole names, all verified."""
    pools = {f"p{i:03d}": {"dns": {"name": f"n{i:03d}", "types": ["A"]},
                           "members": [{"address": f"10.1.{i % 250}.{m + 1}", "port": 80} for m in range(5)]}
             for i in range(400)}
    (zone.dir / "inventory.yml").write_text(yaml.safe_dump({"pools": pools}))
    serial = zone.named.serial()
    result = zone.run("apply")
    assert result.exit_code == 0, result.output
    messages = zone.named.serial() - serial
    assert messages >= 2
    for i in (0, 199, 399):
        assert len(zone.named.answers(f"n{i:03d}.example.com.", "A")[0]) == 5
    assert zone.run("plan").exit_code == 0


def test_a_change_that_does_not_verify_is_undone_the_same_way(zone, monkeypatch):
    """Between lbctl's UPDATE and its read-back someone else changes a record it wrote: verify
    fails, and lbctl puts the previous records back with another compare-and-swap UPDATE."""
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")))
    assert zone.run("apply").exit_code == 0
    update, calls = wire.update, []

    def update_then_meddle(server, ops):
        sent = update(server, ops)
        calls.append(len(ops))
        if len(calls) == 1:
            zone.named.update(("add", WWW, "A", 30, ["10.0.0.66"]))
        return sent
    monkeypatch.setattr(wire, "update", update_then_meddle)
    zone.inventory(members(("web-1", "10.0.0.1"), ("web-3", "10.0.0.3")))
    line = one_line_error(zone.run("apply"), "the primary answers www.example.com. A with 10.0.0.1, 10.0.0.3, 10.0.0.66",
                          "restored the previous configuration, which is live again")
    assert len(calls) == 2 and zone.a() == ("10.0.0.1", "10.0.0.2"), line
