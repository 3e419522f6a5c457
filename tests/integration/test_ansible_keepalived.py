"""The Ansible role's keepalived pair (ansible/roles/lbctl/tasks/keepalived.yml), run
by its harness tests/pair.yml for an inventory group of two nodes: each node's lbctl.yml
gets its own side of the pair, which lbctl renders into the two keepalived.conf files
of one VRRP pair, and the sysctl drop-in lets listeners bind the VIP on both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lbctl import config, inventory
from lbctl.render import render
from lbctl_testkit.support import SKIP_PREFIX
from tests.integration.test_ansible import ANSIBLE_PLAYBOOK, ROLE, ROOT

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason=f"{SKIP_PREFIX}: ansible-playbook not found; "
                                 "pip install '.[test]' (ansible-core)")]


def test_a_pair_from_an_inventory_group(tmp_path):
    env = {**os.environ, "LBCTL_TEST_PREFIX": str(tmp_path), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOME": str(tmp_path),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("ANSIBLE_CONFIG", None)
    run = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(ROLE / "tests" / "pair-inventory"), str(ROLE / "tests" / "pair.yml")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    model = inventory.from_raw({"listeners": {"web": {"address": "198.18.1.10", "port": 80, "default_pool": "app"}},
                                "pools": {"app": {"members": [{"name": "a", "address": "10.0.0.1", "port": 80}]}}})
    texts = {}
    for node in ("lb1", "lb2"):
        targets = yaml.safe_load((tmp_path / node / "targets.yml").read_text())
        vip = config.from_raw({"targets": targets}, Path("/etc/lbctl")).targets["vip"]
        texts[node] = render(model, "keepalived", vip.options, None, cache={"target": "vip"})
        sysctl = (tmp_path / node / "60-lbctl-nonlocal-bind.conf").read_text()
        assert "ip_nonlocal_bind = 1" in sysctl and "net.ipv4.conf.all.arp_ignore = 1" in sysctl
    assert "priority 150" in texts["lb1"] and "unicast_src_ip 198.18.0.11" in texts["lb1"]
    assert "priority 100" in texts["lb2"] and "unicast_src_ip 198.18.0.12" in texts["lb2"]
    assert "        198.18.0.12\n" in texts["lb1"] and "        198.18.0.11\n" in texts["lb2"]
    assert 'script "/opt/lbctl/venv/bin/lbctl check -c /etc/lbctl/lbctl.yml -t edge"' in texts["lb2"]
