"""Helpers for lbctl's tests: real HTTP backends, real HAProxy/nginx processes, polling.

Integration tests mark themselves with ``requires_haproxy`` / ``requires_nginx``
(``pytestmark = requires_nginx``): they skip with a reason starting
``INTEGRATION SKIPPED`` when a binary is missing, so CI can fail on any such skip.
"""

from lbctl_testkit.support.backends import Backend, free_port
from lbctl_testkit.support.procs import (
    HAProxyProcess,
    NginxProcess,
    SKIP_PREFIX,
    find_binary,
    http_get,
    nginx_globals,
    nginx_temp_paths,
    requires_haproxy,
    requires_nginx,
    running_haproxy,
    running_nginx,
    wait_until,
)

__all__ = [
    "Backend", "free_port", "HAProxyProcess", "NginxProcess", "SKIP_PREFIX", "find_binary",
    "http_get", "nginx_globals", "nginx_temp_paths", "requires_haproxy", "requires_nginx",
    "running_haproxy", "running_nginx", "wait_until",
]
