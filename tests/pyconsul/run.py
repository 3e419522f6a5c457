"""Run py-consul's own API tests against lbctl's Consul emulator (tests/run-all.sh).

Downloads the pinned py-consul sdist (its tests are never committed here), extracts it
into a temporary directory, replaces its container-starting conftest with
``emulator_conftest.py`` and runs the in-scope test files with the sdist's own
``consul`` package (so the library and its tests are the same version).  Exits
non-zero if the download fails, if any selected test fails or is skipped, or if a
deselected test no longer exists.  Out-of-scope tests are deselected by name below,
each with its reason; docs/testing.md lists the same ones.

    python tests/pyconsul/run.py [extra pytest arguments]
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PY_CONSUL_VERSION = "1.8.0"
# py-consul's tests probe the agent's own HTTP address from inside its container
# (``Check.http("http://localhost:8500", ...)``): the emulator listens there too.
PORT = 8500

TEST_FILES = ["tests/api/test_health.py", "tests/api/test_catalog.py", "tests/api/test_kv.py",
              "tests/api/test_session.py", "tests/api/test_status.py", "tests/api/test_agent.py",
              "tests/test_std.py", "tests/test_base.py"]

# test node id -> why the emulator does not serve it (docs/testing.md, "Emulator fidelity").
_CONNECT = "Connect service mesh (sidecars, proxies, connect health): not emulated"
_GATEWAYS = "gateways (ingress, terminating) and their config entries: not emulated"
_LIFECYCLE = "agent lifecycle and operations (reload, leave, force-leave, metrics, monitor): not emulated"
_ACL_ADMIN = "ACL system administration (agent token API, ACL-enabled agent fixture): not emulated"
DESELECTED: dict[str, str] = {
    "tests/api/test_health.py::TestHealth::test_health_connect": _CONNECT,
    "tests/api/test_health.py::TestHealth::test_health_ingress": _GATEWAYS,
    "tests/api/test_catalog.py::TestCatalog::test_catalog_gateway_services": _GATEWAYS,
    "tests/api/test_agent.py::TestAgent::test_agent_service_register_kind_proxy_locality": _CONNECT,
    "tests/api/test_agent.py::TestAgent::test_agent_service_connect": _CONNECT,
    "tests/api/test_agent.py::TestAgent::test_agent_force_leave_prune": _LIFECYCLE,
    "tests/api/test_agent.py::TestAgent::test_agent_reload": _LIFECYCLE,
    "tests/api/test_agent.py::TestAgent::test_agent_metrics": _LIFECYCLE,
    "tests/api/test_agent.py::TestAgent::test_agent_monitor_rejects_invalid_loglevel": _LIFECYCLE,
    "tests/api/test_agent.py::TestAgent::test_agent_leave": _LIFECYCLE,
    "tests/api/test_agent.py::TestAgent::test_agent_token_permission_denied": _ACL_ADMIN,
    "tests/api/test_agent.py::TestAgent::test_agent_token_set": _ACL_ADMIN,
}

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def fetch(dest: Path) -> Path:
    """Download and extract the pinned sdist; return the source tree."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    "-d", str(dest), f"py-consul=={PY_CONSUL_VERSION}"], check=True)
    [archive] = dest.glob("py_consul-*.tar.gz")
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links and paths out of dest
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    root = dest / f"py_consul-{PY_CONSUL_VERSION}"
    (root / "conftest.py").unlink()
    shutil.copy(HERE / "emulator_conftest.py", root / "conftest.py")
    return root


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str]) -> int:
    if not port_free(PORT):
        print(f"127.0.0.1:{PORT} is in use: py-consul's tests need the emulator there", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="py-consul-") as tmp:
        try:
            root = fetch(Path(tmp))
        except (subprocess.CalledProcessError, ValueError, OSError) as exc:
            print(f"py-consul {PY_CONSUL_VERSION} sdist: cannot download or extract: {exc}", file=sys.stderr)
            return 2
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                "-W", "ignore::pytest.PytestConfigWarning", *TEST_FILES]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO), str(REPO / "testkit")])}
        env.pop("CONSUL_HTTP_TOKEN", None)
        env["LBCTL_PYCONSUL_PORT"] = str(PORT)
        listed = subprocess.run(args + ["--collect-only"], cwd=root, env=env, capture_output=True, text=True)
        unknown = [n for n in DESELECTED if n not in listed.stdout.split()]
        if listed.returncode or unknown:
            print(listed.stdout[-2000:], listed.stderr[-2000:], file=sys.stderr)
            print(f"py-consul {PY_CONSUL_VERSION}: collection failed or deselected tests not found: {unknown}",
                  file=sys.stderr)
            return 2
        for node in DESELECTED:
            args += ["--deselect", node]
        return subprocess.run(args + argv, cwd=root, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
