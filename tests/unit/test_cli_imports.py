"""A one-shot command loads only what it uses (issue 11): ``lbctl render`` of a large
inventory should not pay for the targets' control code, deploy, Consul, HTTP or TLS,
nor ``lbctl --help`` for Jinja2 or the inventory."""

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
# What only apply, watch, status and friends need: the device and process control code.
CONTROL = {"requests", "urllib3", "consul", "http.client", "ssl", "prometheus_client", "subprocess",
           "lbctl.deploy", "lbctl.watch", "lbctl.watch.controller", "lbctl.watch.metrics", "lbctl.discovery",
           "lbctl.targets.filetarget",
           "lbctl.targets.haproxy.target", "lbctl.targets.haproxy.ctl", "lbctl.targets.haproxy.binary",
           "lbctl.targets.nginx.target", "lbctl.targets.nginx.ctl", "lbctl.targets.nginx.binary",
           "lbctl.targets.bigip.target", "lbctl.targets.bigip.icontrol", "lbctl.targets.bigip.sdk", "lbctl.targets.probes",
           "lbctl.targets.state", "lbctl.audit"}


def modules_after(tmp_path, *args: str) -> set[str]:
    """The modules loaded once ``lbctl *args`` has run, in a fresh interpreter."""
    out = tmp_path / "modules.json"
    code = ("import json, sys\nfrom lbctl.cli import main\ntry:\n    main(sys.argv[2:])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "open(sys.argv[1], 'w').write(json.dumps(sorted(sys.modules)))\n")
    subprocess.run([sys.executable, "-c", code, str(out), *args], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.read_text()))


def test_render_loads_no_control_code(tmp_path):
    for kind in ("haproxy", "nginx"):
        loaded = modules_after(tmp_path, "render", "-i", str(EXAMPLE), "-t", kind, "-o", str(tmp_path / "out"))
        assert "lbctl.render" in loaded and (tmp_path / "out").stat().st_size > 0  # it did render
        assert not loaded & CONTROL, sorted(loaded & CONTROL)
        others = [m for m in loaded for other in ("haproxy", "nginx", "bigip")
                  if other != kind and m.startswith(f"lbctl.targets.{other}")]
        assert not others, others  # nor any other kind: lbctl.kinds loads only the one asked for


def test_help_loads_no_template_engine_nor_parser(tmp_path):
    loaded = modules_after(tmp_path, "--help")
    heavy = CONTROL | {"jinja2", "yaml", "msgspec", "lbctl.render", "lbctl.inventory", "lbctl.config"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_render_without_a_config_loads_no_config_parser(tmp_path):
    loaded = modules_after(tmp_path, "render", "-i", str(EXAMPLE), "-t", "haproxy")
    assert not loaded & {"lbctl.config.loader", "lbctl.targets.bigip.settings", "lbctl.guard"}, sorted(loaded)
