"""The command line, through click's CliRunner (and the console entry point)."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from lbctl import config, inventory, kinds
from lbctl.cli import cli
from lbctl.render import render
from tests.helpers import EXAMPLE, ROOT, example_raw, minimal_raw, needs
from lbctl_testkit.support import requires_haproxy, requires_nginx


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_inventory(tmp_path, raw, name="inv.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_render_prints_the_config(kind):
    result = run("render", "-i", EXAMPLE, "-t", kind)
    assert result.exit_code == 0
    assert result.output == render(inventory.load(EXAMPLE), kind, config.options(kind))


def test_render_writes_a_file(tmp_path):
    out = tmp_path / "haproxy.cfg"
    result = run("render", "-i", EXAMPLE, "-t", "haproxy", "-o", out)
    assert result.exit_code == 0
    assert out.read_text().startswith("# Rendered by lbctl")


def test_bad_inventory_is_one_line_exit_1_and_changes_no_file(tmp_path):
    out = tmp_path / "haproxy.cfg"
    out.write_text("live config\n")
    raw = example_raw()
    raw["pools"]["web"]["members"][1]["port"] = 70000
    bad = write_inventory(tmp_path, raw)
    result = run("render", "-i", bad, "-t", "haproxy", "-o", out)
    assert result.exit_code == 1
    assert result.output == (f"lbctl: error: {bad}: pools.web.members[1].port: must be an integer "
                             "from 1 to 65535 (got 70000)\n")
    assert out.read_text() == "live config\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg", "inv.yml"]


def test_plan_exit_codes(tmp_path):
    out = tmp_path / "haproxy.cfg"
    first = run("plan", "-i", EXAMPLE, "-t", "haproxy", "-o", out)
    assert first.exit_code == 2 and f"+++ {out} (rendered)" in first.output
    assert not out.exists()
    run("render", "-i", EXAMPLE, "-t", "haproxy", "-o", out)
    same = run("plan", "-i", EXAMPLE, "-t", "haproxy", "-o", out)
    assert (same.exit_code, same.output) == (0, f"{out}: no changes\n")
    raw = example_raw()
    raw["pools"]["web"]["members"][0]["weight"] = 20
    changed = run("plan", "-i", write_inventory(tmp_path, raw), "-t", "haproxy", "-o", out)
    assert changed.exit_code == 2
    assert "-    server web-1 10.0.1.11:8080 weight 10 maxconn 200 cookie web-1\n" in changed.output
    assert "+    server web-1 10.0.1.11:8080 weight 20 maxconn 200 cookie web-1\n" in changed.output
    broken = run("plan", "-i", tmp_path / "missing.yml", "-t", "haproxy", "-o", out)
    assert broken.exit_code == 1 and "cannot read inventory" in broken.output


def test_templates_override_falls_back_to_packaged(tmp_path):
    (tmp_path / "nginx-upstream.j2").write_text("# custom upstream for {{ p.name }}\nserver 127.0.0.1:1;\n")
    result = run("render", "-i", EXAMPLE, "-t", "nginx", "--templates", tmp_path)
    assert result.exit_code == 0
    assert "    upstream web {\n        # custom upstream for web\n" in result.output
    assert result.output.startswith("# Rendered by lbctl")  # nginx.conf.j2 still the packaged one


def test_template_errors_are_one_line(tmp_path):
    (tmp_path / "haproxy.cfg.j2").write_text("global\n{{ no_such_variable }}\n")
    result = run("render", "-i", EXAMPLE, "-t", "haproxy", "--templates", tmp_path)
    assert (result.exit_code, result.output) == (1, "lbctl: error: template haproxy.cfg.j2: 'no_such_variable' is undefined\n")
    (tmp_path / "haproxy.cfg.j2").write_text("global\n{% for %}\n")
    result = run("render", "-i", EXAMPLE, "-t", "haproxy", "--templates", tmp_path)
    assert result.exit_code == 1 and result.output.startswith(f"lbctl: error: {tmp_path}/haproxy.cfg.j2:2: template error:")


def test_nginx_limits_are_config_errors():
    raw = example_raw()
    raw["pools"]["api"]["balance"] = "source"  # api has a backup member
    desired = inventory.from_raw(raw)
    render(desired, "haproxy", config.options("haproxy"))
    with pytest.raises(Exception, match="pools.api: nginx cannot combine backup members with balance source"):
        render(desired, "nginx", config.options("nginx"))


def test_usage_errors_exit_1_so_that_2_means_changes(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lbctl", "plan", "--no-such-option"], capture_output=True, text=True)
    assert proc.returncode == 1 and "No such option '--no-such-option'" in proc.stderr


@pytest.mark.parametrize("args", [["plan", "--no-such-option"], ["render", "-t"], ["frobnicate"]])
def test_usage_errors_are_documented_as_click_prints_them(args):
    proc = subprocess.run([sys.executable, "-m", "lbctl", *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"$ lbctl {' '.join(args)}\n{proc.stderr}" in (ROOT / "docs" / "cli.md").read_text()


def test_t_help_lists_the_kinds_and_format_where_it_applies():
    for command in ("render", "validate"):
        text = " ".join(run(command, "--help").output.split())
        assert kinds.named(tuple(kinds.KINDS)) in text and "--format [as3|config]" in text
    for command in ("plan", "apply", "watch", "rollback", "status"):
        assert "as3" not in run(command, "--help").output and "bigip" not in run(command, "--help").output
    result = run("render", "-i", EXAMPLE, "-t", "varnish")
    assert result.output == f"lbctl: error: -t must be one of {', '.join(kinds.KINDS)} without a config (got 'varnish')\n"


def test_as3_is_a_format_of_bigip_not_a_kind():
    """``-t as3`` (before 0.2) gets one line naming the new spelling; ``-t bigip`` renders the
    declaration with the default settings, and a file kind has no such format."""
    for command in ("render", "validate", "plan"):
        result = run(command, "-i", EXAMPLE, "-t", "as3")
        assert result.exit_code == 1 and result.output == (
            "lbctl: error: -t as3 is now --format as3 of a bigip target: "
            "lbctl render -t <bigip target, or bigip> --format as3\n")
    as3 = run("render", "-i", EXAMPLE, "-t", "bigip", "--format", "as3")
    assert as3.exit_code == 0 and json.loads(as3.output)["class"] == "ADC"
    assert run("render", "-i", EXAMPLE, "-t", "bigip").output == as3.output
    wrong = run("render", "-i", EXAMPLE, "-t", "haproxy", "--format", "as3")
    assert wrong.exit_code == 1 and wrong.output == (
        "lbctl: error: haproxy: a haproxy target renders --format config (got 'as3')\n")
    plan = run("plan", "-i", EXAMPLE, "-t", "bigip", "-o", "x")
    assert plan.exit_code == 1 and "without a config, only render and validate take a bigip" in plan.output


def test_bash_completion_as_documented(tmp_path):
    """docs/cli.md: eval "$(_LBCTL_COMPLETE=bash_source lbctl)", then Tab completes."""
    (tmp_path / "lbctl").write_text(f'#!/bin/sh\nexec {sys.executable} -m lbctl "$@"\n')
    (tmp_path / "lbctl").chmod(0o755)
    script = ('eval "$(_LBCTL_COMPLETE=bash_source lbctl)"; COMP_WORDS=(lbctl re); COMP_CWORD=1; '
              '_lbctl_completion lbctl; echo "${COMPREPLY[@]}"; '
              'COMP_WORDS=(lbctl watch --log-format ""); COMP_CWORD=3; COMPREPLY=(); '
              '_lbctl_completion lbctl; echo "${COMPREPLY[@]}"')
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert proc.stdout == "reload render\nhuman json\n", proc.stderr
    assert '_LBCTL_COMPLETE=bash_source lbctl' in (ROOT / "docs" / "cli.md").read_text()


@needs(requires_haproxy)
def test_validate_haproxy_ok_and_rejected(tmp_path):
    result = run("validate", "-i", EXAMPLE, "-t", "haproxy")
    assert (result.exit_code, result.output) == (0, f"{EXAMPLE}: the haproxy configuration is valid\n")
    (tmp_path / "haproxy.cfg.j2").write_text("global\n    nosuchkeyword\n")
    bad = run("validate", "-i", EXAMPLE, "-t", "haproxy", "--templates", tmp_path)
    assert bad.exit_code == 1
    assert "haproxy rejected" in bad.output and "unknown keyword 'nosuchkeyword'" in bad.output
    assert bad.output.count("\n") == 1


@needs(requires_nginx)
def test_validate_nginx(tmp_path):
    result = run("validate", "-i", write_inventory(tmp_path, minimal_raw()), "-t", "nginx")
    assert result.exit_code == 0, result.output
