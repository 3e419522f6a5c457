"""``kind: bigip`` targets in lbctl.yml."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbctl import config
from lbctl.targets.bigip.settings import BigIPSettings
from lbctl.errors import ConfigError


def load(tmp_path: Path, body: str) -> config.Config:
    path = tmp_path / "lbctl.yml"
    path.write_text(f"state_dir: state\ntargets:\n  f5:\n{body}")
    return config.load(path)


MINIMAL = "    kind: bigip\n    host: bigip.example.com\n    username: lbctl\n    password_env: F5_PASSWORD\n"


def test_defaults(tmp_path):
    target = load(tmp_path, MINIMAL).targets["f5"]
    assert (target.kind, target.state_dir, target.lock_timeout_ms, target.shared) == (
        "bigip", tmp_path / "state" / "f5", 120_000, True)
    assert target.options == BigIPSettings(host="bigip.example.com", username="lbctl", password_env="F5_PASSWORD")
    opts = target.options
    assert (opts.port, opts.verify, opts.partition, opts.mode, opts.timeout_ms, opts.retries, opts.owner,
            opts.drain_time_ms, opts.save_config, opts.sync_group) == (
        443, True, "Common", "imperative", 30_000, 3, "lbctl", 300_000, True, None)


def test_every_key(tmp_path):
    target = load(tmp_path, "    kind: bigip\n    host: 192.0.2.10\n    port: 8443\n    username: admin\n"
                            "    password_file: secrets/f5\n    verify: true\n    ca_bundle: certs/f5-ca.pem\n"
                            "    partition: Dev\n    mode: as3\n    timeout: 10s\n    retries: 5\n    backoff: 500ms\n"
                            "    owner: blue\n    drain_time: 0\n    save_config: false\n    sync_group: dg1\n"
                            "    as3_tenant: Shop\n    as3_timeout: 5m\n    device_check: true\n"
                            "    lock_timeout: 30s\n    shared: false\n").targets["f5"]
    assert target.options == BigIPSettings(
        host="192.0.2.10", port=8443, username="admin", password_file=tmp_path / "secrets/f5", verify=True,
        ca_bundle=tmp_path / "certs/f5-ca.pem", partition="Dev", mode="as3", timeout_ms=10_000, retries=5,
        backoff_ms=500, owner="blue", drain_time_ms=0, save_config=False, sync_group="dg1", as3_tenant="Shop",
        as3_timeout_ms=300_000, device_check=True)
    assert (target.lock_timeout_ms, target.shared) == (30_000, False)


@pytest.mark.parametrize("body, message", [
    ("    kind: bigip\n    host: h.example.com\n    username: u\n",
     "targets.f5: needs exactly one of password_env (an environment variable) or password_file"),
    (MINIMAL + "    password_file: x\n", "targets.f5: needs exactly one of password_env"),
    ("    kind: bigip\n    username: u\n    password_env: X\n", "targets.f5.host: is required"),
    (MINIMAL + "    mode: declarative\n", "targets.f5.mode: must be one of imperative, as3 (got 'declarative')"),
    (MINIMAL + "    verify: yes please\n", "targets.f5.verify: must be true or false (got 'yes please')"),
    (MINIMAL + "    partition: /Common\n", "targets.f5.partition: must be a name of letters"),
    (MINIMAL + "    config: /etc/x\n", "targets.f5: unknown key 'config'"),
    (MINIMAL + "    password_env: 'A B'\n", "targets.f5.password_env: must be an environment variable name"),
    (MINIMAL + "    drain_time: soon\n", "targets.f5.drain_time: must be a duration"),
])
def test_bad_values_name_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body)
    assert str(info.value).startswith(f"{tmp_path / 'lbctl.yml'}: {message}")


def test_without_f5_sdk_the_bigip_target_says_how_to_install_it(monkeypatch, tmp_path):
    import sys

    from lbctl.targets.bigip import sdk
    from lbctl.targets.bigip.target import BigIPTarget

    monkeypatch.setitem(sys.modules, "f5.bigip", None)   # as if f5-sdk were not installed
    sdk.load.cache_clear()
    try:
        target = BigIPTarget(load(tmp_path, MINIMAL).targets["f5"])
        with pytest.raises(ConfigError, match=r"^the bigip target needs f5-sdk, which is not installed .*"
                                              r"pip install 'lbctl\[bigip\]'$"):
            target.device.root
    finally:
        sdk.load.cache_clear()


def test_lbctl_imports_without_touching_f5_sdk():
    import subprocess
    import sys

    code = "import sys, lbctl.cli; sys.exit(any(m.split('.')[0] in ('f5', 'icontrol') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
