"""No traceback reaches a user: every failure is one line ``lbctl: error: ...`` and exit 1
(``-v`` adds the traceback of an unexpected one)."""

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lbctl import inventory
from lbctl.cli import cli
from tests.helpers import EXAMPLE


def lbctl(tmp_path, *args, config: str = "", state: str = "state", binary: str = "haproxy"):
    (tmp_path / "lbctl.yml").write_text(yaml.safe_dump({
        "source": {"inventory": str(EXAMPLE)}, "state_dir": state,
        "targets": {"edge": {"kind": "haproxy", "config": config or str(tmp_path / "haproxy.cfg"), "binary": binary,
                             "master_socket": str(tmp_path / "master.sock"),
                             "stats_socket": str(tmp_path / "stats.sock"), "state_file": str(tmp_path / "state.txt")}}}))
    return CliRunner().invoke(cli, [*args, "-c", str(tmp_path / "lbctl.yml")])


def one_line_error(result, *expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1 and result.output.startswith("lbctl: error: "), result.output
    for text in expected:
        assert text in result.output


def unwritable_dir(tmp_path) -> Path:
    """A directory this process cannot create files in (root writes everywhere but /sys)."""
    if os.geteuid() == 0:
        return Path("/sys")
    d = tmp_path / "ro"
    d.mkdir(mode=0o555)
    return d


@pytest.mark.parametrize("command", ["apply", "validate"])
def test_an_unwritable_config_directory(tmp_path, command):
    config = unwritable_dir(tmp_path) / "haproxy.cfg"
    one_line_error(lbctl(tmp_path, command, config=str(config)),
                   f"edge: cannot write the candidate beside {config} to check it: Permission denied")


@pytest.mark.parametrize("command", ["apply", "validate"])
def test_a_missing_binary(tmp_path, command):
    one_line_error(lbctl(tmp_path, command, binary="/nonexistent/haproxy"), "/nonexistent/haproxy: command not found")


@pytest.mark.parametrize("command", ["apply", "plan", "render", "status", "reload"])
def test_a_directory_where_the_config_file_should_be(tmp_path, command):
    (tmp_path / "cfgdir").mkdir()
    one_line_error(lbctl(tmp_path, command, config=str(tmp_path / "cfgdir")), "cfgdir: Is a directory")


@pytest.mark.parametrize("command", ["apply", "reload", "rollback"])
def test_a_file_where_the_state_directory_should_be(tmp_path, command):
    (tmp_path / "statefile").write_text("")
    one_line_error(lbctl(tmp_path, command, state="statefile"), "statefile")


def test_an_unexpected_exception_is_one_line_and_v_shows_the_traceback(tmp_path, monkeypatch):
    def broken(path):
        raise RuntimeError("a bug")
    monkeypatch.setattr(inventory, "load", broken)
    one_line_error(lbctl(tmp_path, "plan"), "lbctl: error: unexpected RuntimeError: a bug (please report this")
    verbose = lbctl(tmp_path, "plan", "-v")
    assert verbose.exit_code == 1
    assert "Traceback (most recent call last)" in verbose.output
    assert verbose.output.splitlines()[-1].startswith("lbctl: error: unexpected RuntimeError: a bug")


def test_reload_of_a_process_that_is_not_running_says_how_to_start_it(tmp_path):
    assert lbctl(tmp_path, "apply").exit_code == 0  # written: haproxy is not running
    one_line_error(lbctl(tmp_path, "reload"),
                   "edge: haproxy is not running, so there is nothing to reload; start it: ",
                   f"-W -f {tmp_path / 'haproxy.cfg'} -S {tmp_path / 'master.sock'},level,admin", "(docs/running.md)")
