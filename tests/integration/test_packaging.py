"""The wheels: lbctl's carries the templates (an installed lbctl renders outside the
checkout) and no emulator nor test helper; those are in lbctl-testkit's wheel only."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import EXAMPLE, ROOT

pytestmark = pytest.mark.integration


def build_wheel(source, out):
    """The wheel of a copy of ``source``: pip builds in the tree, and setuptools' build/
    there keeps every module an earlier build saw (one since moved, say) in each wheel."""
    copy = out / "source"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(copy)], check=True, capture_output=True)
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(ROOT, tmp_path_factory.mktemp("wheels"))


def test_installed_wheel_renders_with_its_own_templates(wheel, tmp_path):
    target = tmp_path / "site"
    assert wheel.name.startswith("lbctl-0")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    shipped = sorted(p.name for p in (target / "lbctl" / "templates").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "templates").glob("*.j2")) and "haproxy.cfg.j2" in shipped
    proc = subprocess.run([sys.executable, "-c", "import lbctl.cli, sys; print(lbctl.cli.__file__); lbctl.cli.main()",
                           "render", "-i", str(EXAMPLE), "-t", "nginx"],
                          cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{target}/lbctl/cli.py\n# Rendered by lbctl")


def test_lbctl_wheel_holds_no_emulator_nor_test_kit(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"lbctl"}
    assert [n for n in names if "emulator" in n or "testkit" in n or "support" in n] == []
    assert "lbctl/cli.py" in names and "lbctl/data/as3-schema.json" in names
    ui = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lbctl" / "ui").rglob("*") if p.suffix in (".j2", ".js", ".css")}
    assert len(ui) == 6 and ui - set(names) == set()  # the operator page's templates and assets
    # every module of the checkout (a package missing from [tool.setuptools] packages is left out)
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lbctl").rglob("*.py")}
    assert modules - set(names) == set()


def test_testkit_wheel_holds_the_emulators_and_helpers_only(tmp_path):
    kit = zipfile.ZipFile(build_wheel(ROOT / "testkit", tmp_path))
    names = kit.namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"lbctl_testkit"}
    for module in ("emulators/consul/__main__.py", "emulators/bigip/__main__.py", "emulators/bigip/as3.py",
                   "support/__init__.py", "support/stack.py"):
        assert f"lbctl_testkit/{module}" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in kit.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: lbctl" in requires
