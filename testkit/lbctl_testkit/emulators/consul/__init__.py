"""A faithful Consul HTTP API emulator for lbctl's tests and demos.

``ConsulEmulator`` serves ``/v1/agent``, ``/v1/catalog``, ``/v1/health``, ``/v1/kv``,
``/v1/session`` and ``/v1/status`` on loopback, with Consul's blocking queries,
indexes, headers, error messages (see docs/upstream.md#consul) and per-client
connection cap (see docs/testing.md), so the real py-consul client can drive it.
Fault switches (``outage``, ``set_latency``,
``fail_next``, ``reset_index``...) let tests exercise failure handling.

Layout: ``state.py`` (``Store``: pure in-memory state, built from ``core``,
``catalog``, ``agent``, ``views``, ``sessions``; ``checktable.py`` keeps the checks
encoded), ``probes.py`` (HTTP/TCP/script checks the agent runs), ``filter.py``
(go-bexpr subset), ``api.py``/``kvapi.py`` (endpoints), ``server.py`` (HTTP, the
connection cap and fault switches).
Run ``python -m lbctl_testkit.emulators.consul --port 8500`` for a demo server.

Test and demo support only: it imports nothing from lbctl, and lbctl's runtime code
must not import it.
"""

from .core import ConsulError
from .filter import FilterError, compile_filter
from .server import ConsulEmulator
from .state import Store

__all__ = ["ConsulEmulator", "ConsulError", "FilterError", "Store", "compile_filter"]
