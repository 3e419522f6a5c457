"""Property: no discovery value injects a directive into Apache's configuration.

The same fields and values as test_hostile_input.py, through the apache templates (both
layouts): each value ends in a clean one-line ConfigError, or in a configuration with
exactly the lines the templates write, each of the same shape as with a harmless value,
that the real ``apache2 -t`` accepts.  The base inventory has no health-check Host
header (apache refuses one: a test of its own in tests/unit/test_apache.py).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings as hsettings

from lbctl import config, inventory, model
from lbctl.errors import ConfigError, ValidationError
from lbctl.render import render
from lbctl.targets.apache import binary
from lbctl_testkit.support import find_binary
from lbctl_testkit.support.apache import requires_apache
from tests.integration import test_hostile_input as hostile

pytestmark = requires_apache
LAYOUTS = ("main", "include")
# A member's address is a host name apache would resolve at start-up, never during -t; a
# certificate that is not there is the operator's to fix; a value that is only refused
# by apache's own -t is a bug (the view must refuse it first).
EXTERNAL = hostile.EXTERNAL


def without_check_host(desired: model.Desired) -> model.Desired:
    pools = tuple(model.replace(p, health=model.replace(p.health, host=None)) for p in desired.pools)
    return model.replace(desired, pools=pools)


def options(layout: str):
    return config.options("apache", {"pid_file": f"{hostile.WORK}/apache2.pid", "error_log": f"{hostile.WORK}/error.log",
                                     "run_dir": f"{hostile.WORK}/run", "layout": layout})


@lru_cache(maxsize=None)
def real_check(layout: str, text: str) -> str | None:
    """None if apache2 -t accepts ``text`` (the include layout: inside a minimal main file)."""
    path = hostile.WORK / f"httpd-{layout}.conf"
    if layout == "include":
        part = hostile.WORK / "lbctl.conf"
        part.write_text(text)
        text = (f"LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
                f"ServerName localhost\nDefaultRuntimeDir {hostile.WORK}/run\nErrorLog {hostile.WORK}/error.log\n"
                f"Include {part}\n")
    path.write_text(text)
    try:
        binary.check(path, find_binary("apache2"))
    except ValidationError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module", autouse=True)
def workdir(tmp_path_factory):
    hostile.WORK = tmp_path_factory.mktemp("hostile-apache")
    (hostile.WORK / "run").mkdir()
    cert = hostile.WORK / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", str(cert), "-out", str(cert), "-days", "1"], check=True, capture_output=True)


@pytest.mark.parametrize("name", sorted(set(hostile.FIELDS) - {"health host"}))
def test_no_value_injects_apache_config(name):
    desired = without_check_host(inventory.from_raw(hostile.base(str(hostile.WORK / "cert.pem"))))
    reference = {layout: render(desired, "apache", options(layout)).splitlines() for layout in LAYOUTS}

    @hsettings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(value=hostile.values)
    def prop(value):
        desired, error = hostile.outcome(hostile.FIELDS[name], value)
        if error is not None:
            hostile.assert_clean_error(error)
            return
        desired = without_check_host(desired)
        for layout in LAYOUTS:
            try:
                lines = render(desired, "apache", options(layout)).splitlines()
            except ConfigError as exc:
                hostile.assert_clean_error(str(exc))
                continue
            expected = reference[layout]
            assert len(lines) == len(expected), f"{layout}: {value!r} changed the number of lines"
            for got, want in zip(lines, expected):
                if got != want:
                    assert hostile.shape(got) == hostile.shape(want), \
                        f"{layout}: {value!r} changed the shape of {want!r} into {got!r}"
            problem = real_check(layout, "\n".join(lines) + "\n")
            if problem is not None:
                assert name in EXTERNAL, f"apache rejected {value!r} in {name}: {problem}"
                hostile.assert_clean_error(problem)

    prop()
