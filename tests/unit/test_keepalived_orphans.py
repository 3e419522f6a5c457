"""``forward_orphans`` without nft: which VIPs are armed in which state, the nft script
lbctl renders (the real nft and a pair: tests/integration/test_keepalived_orphans.py)."""

from __future__ import annotations

from tests.unit.test_keepalived import desired, rendered, target
from lbctl.targets.keepalived import orphans

TWO_GROUPS = {"front": {"router_id": 60, "listeners": ["web"]}, "rest": {"router_id": 61}}


def conf(**over) -> str:
    return rendered(target(forward_orphans="1500ms", groups=TWO_GROUPS, **over),
                    desired(("web", "198.18.1.10"), ("api", "198.18.1.11")))


def test_the_rendered_file_says_so_and_each_instance_has_its_vips():
    text = conf()
    assert "# forward_orphans 1500ms: lbctl's nft table lbctl_vip sends" in text and "to 198.18.0.12" in text
    assert orphans.instance_vips(text) == {"front": ["198.18.1.10"], "rest": ["198.18.1.11"]}
    assert "forward_orphans" not in rendered(target())


def test_backup_vips_are_armed_master_ones_for_a_while_and_fault_ones_not():
    text = conf()
    assert orphans.armed(text, {"front": "BACKUP", "rest": "MASTER"}, 1500) == [
        "198.18.1.10", "198.18.1.11 timeout 1500ms"]
    assert orphans.armed(text, {"front": "FAULT"}, 1500) == []


def test_the_script_replaces_the_table_and_forwards_each_segment_once():
    script = orphans.ruleset("vip", conf(), ["198.18.1.10"], "198.18.0.12", "eth0")
    assert script.startswith("table ip lbctl_vip {}\ndelete table ip lbctl_vip\n")  # one transaction, whole
    assert "elements = { 198.18.1.10, 198.18.1.11 }" in script  # tracked by conntrack; the rest: notrack
    assert "ip daddr != @vips notrack" in script and "ip saddr != @vips notrack" in script
    rule = next(line for line in script.splitlines() if "dup to" in line)
    assert rule.strip() == ('iifname "eth0" ip daddr @forward tcp flags & (syn | rst) == 0 ct state invalid '
                            'ip ttl != 1 ip ttl set 1 dup to 198.18.0.12 device "eth0" drop')
    assert "elements" not in orphans.ruleset("vip", conf(), [], "198.18.0.12", "eth0").split("set forward")[1]
