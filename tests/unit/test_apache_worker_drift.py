"""Runtime drift of the apache kind (lbctl/targets/apache/worker_drift.py): the
BalancerMember lines of a real render against balancer-manager's workers."""

import pytest

from lbctl import config, inventory
from lbctl.render import render
from lbctl.targets.apache import worker_drift
from lbctl.targets.apache.balancers import Balancer, Worker

MEMBERS = [{"name": "a", "address": "10.0.0.1", "port": 81, "weight": 3},
           {"name": "b", "address": "10.0.0.2", "port": 82, "state": "drain"},
           {"name": "c", "address": "fd00::3", "port": 83, "state": "backup"}]


@pytest.fixture(scope="module")
def text():
    raw = {"listeners": {"web": {"address": "127.0.0.1", "port": 18080, "default_pool": "App"}},
           "pools": {"App": {"members": MEMBERS, "health": {"type": "http", "path": "/health"}}}}
    return render(inventory.from_raw(raw), "apache", config.options("apache"))


def worker(host, port, route, lf=1.0, status="Init Ok "):
    return Worker(f"http://{'[' + host + ']' if ':' in host else host}:{port}", host, port, route, lf, status)


def running(*workers):
    return {"app": Balancer("app", "n", workers)}


AS_FILE = running(worker("10.0.0.1", 81, "a", 3.0), worker("10.0.0.2", 82, "b", status="Init Drn Ok "),
                  worker("fd00::3", 83, "c", status="Init Stby Ok "))


def test_the_files_members_are_read_with_route_factor_and_flags(text):
    found = worker_drift.members(text)
    assert [(m.balancer, m.url, m.host, m.port, m.route, m.loadfactor, "".join(m.flags)) for m in found["app"]] == [
        ("app", "http://10.0.0.1:81", "10.0.0.1", 81, "a", 3, ""),
        ("app", "http://10.0.0.2:82", "10.0.0.2", 82, "b", 1, "N"),
        ("app", "http://[fd00::3]:83", "fd00::3", 83, "c", 1, "H")]


def test_what_runs_as_the_file_says_is_no_drift(text):
    assert worker_drift.compare(text, AS_FILE) == []


def test_a_member_removed_at_runtime_is_no_drift(text):
    leftover = running(*AS_FILE["app"].workers, worker("10.0.0.9", 89, "", status="Init Dis "))
    assert worker_drift.compare(text, leftover) == []


def test_differences_are_one_line_each(text):
    state = running(worker("10.0.0.1", 81, "a", 5.0), worker("10.0.0.2", 82, "b", status="Init Ok "),
                    worker("10.0.0.9", 89, "x"))
    found = worker_drift.compare(text, state)
    assert worker_drift.report("/etc/httpd.conf", found) == [
        "running apache differs from /etc/httpd.conf: balancer://app member http://10.0.0.1:81 loadfactor 5 (file 3)",
        "running apache differs from /etc/httpd.conf: balancer://app member http://10.0.0.2:82 status 'Init Ok' "
        "(file +N)",
        "running apache differs from /etc/httpd.conf: balancer://app member http://[fd00::3]:83 is in the file but "
        "not running",
        "running apache differs from /etc/httpd.conf: balancer://app member http://10.0.0.9:89 runs (Init Ok) but is "
        "not in the file"]
    assert worker_drift.repairs(found) is None  # c does not run: a graceful restart


def test_repairs_set_the_files_values_and_disable_strangers(text):
    state = running(worker("10.0.0.1", 81, "a", 5.0, "Init Dis "), *AS_FILE["app"].workers[1:],
                    worker("10.0.0.9", 89, "x"))
    ops = worker_drift.repairs(worker_drift.compare(text, state))
    assert [(op.balancer, op.url, op.route, op.loadfactor, "".join(op.flags)) for op in ops] == [
        ("app", "http://10.0.0.1:81", "a", 3, ""), ("app", "http://10.0.0.9:89", "", 1, "D")]


def test_a_balancer_that_does_not_run(text):
    assert worker_drift.report("f", worker_drift.compare(text, {})) == [
        "running apache differs from f: balancer://app is in the file but not running"]
