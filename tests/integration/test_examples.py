"""The shipped examples/: each lbctl.yml loads, renders and passes the target's
own check; the start command `apply` prints really starts HAProxy and nginx
(docs/running.md); the watch demo's Consul instances answer through HAProxy;
the README's broken inventory fails with the line the README shows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lbctl import config
from lbctl.cli import cli
from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.emulators.consul.__main__ import demo as demo_catalog
from lbctl.targets.nginx import ctl as nginx_ctl
from tests.helpers import ROOT, needs
from lbctl_testkit.support import requires_haproxy, requires_nginx
from lbctl_testkit.support.apache import open_up, requires_apache
from lbctl_testkit.support.backends import free_port
from lbctl_testkit.support.procs import http_get, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated:DeprecationWarning")]
EXAMPLES = sorted((ROOT / "examples").glob("*/lbctl.yml"))
KINDS = {"haproxy": "haproxy", "nginx": "nginx", "apache": "apache", "bigip": "bigip", "as3": "bigip",
         "watch-demo": "haproxy", "dns": "dns", "keepalived": "keepalived"}


@pytest.fixture
def short_dir():
    """A directory with a short path: HAProxy's UNIX sockets allow 97 bytes, and
    pytest's tmp_path can be longer than that with the examples' run/ inside."""
    path = Path(tempfile.mkdtemp(prefix="lbctl-ex-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def copy_examples(tmp_path: Path, free_ports: bool = True) -> Path:
    """examples/ and inventories/ side by side in ``tmp_path`` (their relative paths
    hold), with every listener moved to a free port."""
    for name in ("examples", "inventories"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("run"))
    if free_ports:
        for inv in [tmp_path / "inventories" / "example.yml", tmp_path / "examples" / "watch-demo" / "inventory.yml",
                    tmp_path / "examples" / "apache" / "inventory.yml"]:
            raw = yaml.safe_load(inv.read_text())
            for listener in raw["listeners"].values():
                listener["port"] = free_port()
            inv.write_text(yaml.safe_dump(raw))
    return tmp_path / "examples"


def test_every_target_kind_has_an_example():
    assert {p.parent.name for p in EXAMPLES} == set(KINDS)
    modes = {p.parent.name: {t.kind: getattr(t.options, "mode", None) for t in config.load(p).targets.values()}
             for p in EXAMPLES}
    assert modes["bigip"] == {"bigip": "imperative"} and modes["as3"] == {"bigip": "as3"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_each_example_loads_and_renders(path, short_dir):
    examples = copy_examples(short_dir, free_ports=False)
    copied = examples / path.parent.name / "lbctl.yml"
    loaded = config.load(copied)
    assert [t.kind for t in loaded.targets.values()] == [KINDS[path.parent.name]]
    if loaded.consul is not None:
        return  # rendering needs Consul: test_the_watch_demo_serves_consul_instances
    if "zone" in loaded.targets:  # a dns target prints the records its model publishes, without a server
        result = run("render", "-c", copied, "--format", "records")
        assert result.exit_code == 0 and "www.example.com. 30 IN A 192.0.2.11\n" in result.stdout, result.output
        return
    result = run("render", "-c", copied)
    assert result.exit_code == 0, result.output
    if "f5" in loaded.targets:  # a bigip target renders its AS3 declaration, without a device
        assert json.loads(result.stdout)["class"] == "ADC"
    else:
        assert result.stdout.startswith("# Rendered by lbctl")


@needs(requires_haproxy + requires_nginx + requires_apache)
@pytest.mark.parametrize("name", ["haproxy", "nginx", "apache", "as3"])
def test_each_example_passes_the_targets_own_check(name, short_dir):
    examples = copy_examples(short_dir)
    result = run("validate", "-c", examples / name / "lbctl.yml", *(["--format", "as3"] if name == "as3" else []))
    assert result.exit_code == 0, result.output
    assert result.output.endswith("configuration is valid\n")
    if name == "nginx":  # temp_dir: run/tmp, relative to lbctl.yml, created by lbctl for nginx -t
        assert (examples / "nginx" / "run" / "tmp").is_dir()


def start_as_printed(message: str) -> None:
    """Run the command that apply's "is not running" line gives (docs/running.md)."""
    command = message.split("so it takes effect when it starts: ", 1)[1].removesuffix(" (docs/running.md)\n")
    subprocess.run(["bash", "-c", command], check=True, timeout=30, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def master_pid(lbctl_yml: Path) -> int:
    def running() -> int | None:
        status = run("status", "-c", lbctl_yml, "--json")
        return json.loads(status.stdout)[0]["process"].get("master_pid")
    return wait_until(running, 20, f"{lbctl_yml.parent.name}'s load balancer to run")


@needs(requires_haproxy)
def test_the_watch_demo_serves_consul_instances(short_dir):
    examples = copy_examples(short_dir)
    demo = examples / "watch-demo" / "lbctl.yml"
    raw = yaml.safe_load(demo.read_text())
    listen = yaml.safe_load((examples / "watch-demo" / "inventory.yml").read_text())["listeners"]["web"]["port"]
    with ConsulEmulator() as consul:
        demo_catalog(consul)
        raw["source"]["consul"]["address"] = f"127.0.0.1:{consul.port}"
        raw["targets"]["edge"]["probes"] = [{"url": f"http://127.0.0.1:{listen}/"}]
        demo.write_text(yaml.safe_dump(raw))
        first = run("apply", "-c", demo)
        assert first.exit_code == 0 and "haproxy is not running" in first.output, first.output
        start_as_printed(first.output)
        pid = master_pid(demo)
        try:
            answers = {wait_until(lambda: http_get(f"http://127.0.0.1:{listen}/").body, 20, "a demo instance",
                                  ignore=(OSError,)) for _ in range(20)}
            assert answers <= {"web-1\n", "web-2\n"} and answers
            assert "master_log" in raw["targets"]["edge"]
            assert "Loading success." in (examples / "watch-demo" / "run" / "haproxy-master.log").read_text()
            again = run("apply", "-c", demo)
            assert again.exit_code == 0 and again.output.endswith("is up to date\n"), again.output
        finally:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not nginx_ctl.alive(pid), 20, "haproxy to stop")


@needs(requires_nginx)
def test_the_printed_command_starts_nginx(short_dir):
    examples = copy_examples(short_dir)
    lbctl_yml = examples / "nginx" / "lbctl.yml"
    first = run("apply", "-c", lbctl_yml)
    assert first.exit_code == 0 and "nginx is not running" in first.output, first.output
    start_as_printed(first.output)
    pid = master_pid(lbctl_yml)
    try:
        assert nginx_ctl.generation(examples / "nginx" / "run" / "nginx.pid").workers
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not nginx_ctl.alive(pid), 20, "nginx to stop")


@needs(requires_apache)
def test_the_printed_command_starts_apache(short_dir):
    examples = copy_examples(short_dir)
    lbctl_yml = examples / "apache" / "lbctl.yml"
    first = run("apply", "-c", lbctl_yml)
    assert first.exit_code == 0 and "apache is not running" in first.output, first.output
    open_up(short_dir)  # as root, the children (www-data) must get through mkdtemp's 0700
    start_as_printed(first.output)
    pid = master_pid(lbctl_yml)
    try:
        port = yaml.safe_load((examples / "apache" / "inventory.yml").read_text())["listeners"]["public"]["port"]
        assert http_get(f"http://127.0.0.1:{port}/").status == 503  # up; its members are not
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not nginx_ctl.alive(pid), 20, "apache to stop")


def test_the_readmes_broken_inventory(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = run("render", "-i", "examples/broken-inventory.yml", "-t", "haproxy")
    line = "lbctl: error: examples/broken-inventory.yml: pools.web.members[0].port: must be an integer from 1 to 65535 (got 70000)"
    assert result.exit_code == 1 and result.output == line + "\n"
    assert f"# {line}\n" in (ROOT / "README.md").read_text()
