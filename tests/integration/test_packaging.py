"""The wheel carries the templates: an installed lbctl renders outside the checkout."""

import subprocess
import sys

import pytest

from tests.helpers import EXAMPLE, ROOT

pytestmark = pytest.mark.integration


def test_installed_wheel_renders_with_its_own_templates(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("lbctl-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    assert sorted(p.name for p in (target / "lbctl" / "templates").iterdir()) == [
        "haproxy-backend.j2", "haproxy.cfg.j2", "nginx-http.conf.j2", "nginx-upstream.j2", "nginx.conf.j2"]
    proc = subprocess.run([sys.executable, "-c", "import lbctl.cli, sys; print(lbctl.cli.__file__); lbctl.cli.main()",
                           "render", "-i", str(EXAMPLE), "-t", "nginx"],
                          cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{target}/lbctl/cli.py\n# Rendered by lbctl")
