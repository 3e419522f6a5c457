"""One-shot commands against Consul (the emulator, through py-consul): which
services are chosen, ACL tokens, and failures that must change nothing."""

from __future__ import annotations

import consul as pyconsul
import pytest

from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.support.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def consul():
    with ConsulEmulator(acl_tokens={"s3cret-token": "write"}) as c:
        yield c


@pytest.fixture
def stack(tmp_path, consul, monkeypatch):
    monkeypatch.setenv("LBCTL_TEST_TOKEN", "s3cret-token")
    s = Stack(tmp_path, "haproxy")
    s.settings["targets"]["edge"]["slots"] = 0  # servers named after members, easier to read here
    s.inventory([])
    s.use_consul(consul.port, token_env="LBCTL_TEST_TOKEN")
    return s


def rendered(stack: Stack) -> str:
    result = stack.run("render", "-t", "edge")
    assert result.exit_code == 0, result.output
    return result.stdout


def test_services_by_name_tag_and_filter(stack, consul):
    consul.add_service("app", service_id="app-1", address="10.0.0.1", port=80)
    consul.add_service("api", service_id="api-1", address="10.0.0.2", port=81, tags=["edge"])
    consul.add_service("api", service_id="api-2", address="10.0.0.3", port=81, tags=["internal"])
    consul.add_service("db", service_id="db-1", address="10.0.0.4", port=5432, tags=["edge"], meta={"tier": "data"})
    text = rendered(stack)
    assert "backend app\n" in text and "backend api\n" not in text
    stack.use_consul(consul.port, token_env="LBCTL_TEST_TOKEN", tag="edge")
    text = rendered(stack)
    assert "backend api\n" in text and "backend db\n" in text
    assert "server api-1 10.0.0.2:81" in text and "api-2" not in text  # only the tagged instances
    stack.use_consul(consul.port, token_env="LBCTL_TEST_TOKEN", services=[], filter='ServiceMeta.tier == "data"')
    text = rendered(stack)
    assert "backend db\n" in text and "backend api\n" not in text


def test_maintenance_is_maint_not_dropped(stack, consul):
    consul.add_service("app", service_id="app-1", address="10.0.0.1", port=80)
    agent = pyconsul.Consul(port=consul.port, token="s3cret-token").agent
    assert agent.service.register("app", service_id="app-2", address="10.0.0.2", port=80)
    assert agent.service.maintenance("app-2", True, "deploy")
    text = rendered(stack)
    assert "server app-1 10.0.0.1:80 weight 1\n" in text
    assert "server app-2 10.0.0.2:80 weight 1 disabled\n" in text


def test_a_bad_token_is_one_line_without_the_token(stack, consul, monkeypatch):
    consul.add_service("app", service_id="app-1", address="10.0.0.1", port=80)
    monkeypatch.setenv("LBCTL_TEST_TOKEN", "wrong-secret")
    result = stack.run("apply")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "wrong-secret" not in result.output
    assert "ACL not found" in result.output
    assert not stack.live.exists()
    monkeypatch.delenv("LBCTL_TEST_TOKEN")
    result = stack.run("apply")
    assert result.output == "lbctl: error: source.consul.token_env: the environment variable LBCTL_TEST_TOKEN is not set\n"


def test_an_unreachable_consul_changes_nothing(stack, consul):
    consul.add_service("app", service_id="app-1", address="10.0.0.1", port=80)
    assert stack.run("apply").exit_code == 0
    before = stack.live.read_text()
    consul.outage()
    result = stack.run("apply")
    assert result.exit_code == 1
    assert result.output == f"lbctl: error: consul http://127.0.0.1:{consul.port}/v1/health/service/app: cannot connect\n"
    assert stack.live.read_text() == before


def test_hostile_data_from_consul_never_reaches_the_config(stack, consul):
    consul.add_service("app", service_id="app-1", address="10.0.0.1", port=80, tags=["ok", "x;y"],
                       meta={"note": "a\nb", "lb-health-path": "/x; return 200"})
    consul.add_service("app", service_id="app-2\n    server evil 10.6.6.6:80", address="10.0.0.2", port=80)
    result = stack.run("render", "-t", "edge")
    assert result.exit_code == 0
    assert "evil" not in result.stdout and "return 200" not in result.stdout
    assert "server app-1 10.0.0.1:80 weight 1\n" in result.stdout
    assert result.stderr.count("lbctl: warning:") >= 3
