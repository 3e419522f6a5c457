"""How the console script ends (issue 11): a one-shot command that succeeded ends
the process at once, without tearing its model down, but only once its output is
all written; failures and in-process calls (tests, ``main(argv)``) exit as before."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lbctl.cli import cli
from tests.helpers import EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
# The console script as installed (``lbctl = lbctl.cli:main``), with an exit handler
# that only Python's own shutdown would run.
SCRIPT = ("import atexit, sys\nfrom lbctl.cli import main\n"
          "atexit.register(lambda: sys.stderr.write('python shutdown ran\\n'))\n"
          "sys.argv = ['lbctl', *sys.argv[1:]]\nmain()\n")


def lbctl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_render_to_stdout_is_complete_and_skips_the_teardown(tmp_path):
    done = lbctl("render", "-i", str(EXAMPLE), "-t", "haproxy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = CliRunner().invoke(cli, ["render", "-i", str(EXAMPLE), "-t", "haproxy"])
    assert expected.exit_code == 0 and len(expected.output) > 1000
    assert done.stdout == expected.output  # every byte flushed before the process ended
    assert "python shutdown ran" not in done.stderr


def test_render_to_a_file_reports_it_and_skips_the_teardown(tmp_path):
    out = tmp_path / "haproxy.cfg"
    done = lbctl("render", "-i", str(EXAMPLE), "-t", "nginx", "-o", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"wrote {out}\n"
    assert out.read_text().count("upstream ") >= 2


def test_a_failing_or_long_lived_command_exits_through_python(tmp_path):
    failed = lbctl("render", "-i", str(tmp_path / "missing.yml"), "-t", "haproxy", cwd=tmp_path)
    assert failed.returncode == 1
    assert "cannot read inventory" in failed.stderr and "python shutdown ran" in failed.stderr
    helped = lbctl("--help", cwd=tmp_path)  # not a one-shot command: the usual exit
    assert helped.returncode == 0 and "python shutdown ran" in helped.stderr
