"""HAProxy for the benchmarks: start in master-worker mode, and read servers' states and the
reload count on its sockets."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from lbctl_testkit.bench import lbctl_api
from lbctl_testkit.bench.procs import HOST, binary, popen

# srv_admin_state FMAINT: set for a server rendered ``disabled`` (0x05 with CMAINT) and for
# ``set server ... state maint``; a runtime ``state ready`` clears it but leaves CMAINT (0x04).
FMAINT = 0x01
CMAINT = 0x04


def start_haproxy(directory: Path, config: Path):
    """HAProxy ``-W -S master.sock`` on ``config`` (log: haproxy.log), once its first worker runs."""
    proc = popen([binary("haproxy"), "-W", "-f", str(config), "-S", f"{directory / 'master.sock'},level,admin",
                  "-p", str(directory / "haproxy.pid")], directory / "haproxy.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (directory / "haproxy.log").read_text()[-2000:]
            raise RuntimeError(f"haproxy exited with {proc.returncode}: {tail}")
        with contextlib.suppress(lbctl_api.CommandError):
            if lbctl_api.MasterCLI(directory / "master.sock").show_proc(timeout=1.0).workers:
                return proc
        time.sleep(0.05)
    raise RuntimeError("haproxy did not start a worker within 30 s")


def admin_state(stats: Path, backend: str, address: str) -> int | None:
    """``srv_admin_state`` of the server at ``address`` in ``show servers state <backend>``
    (None: no answer).  Matched by address, not name: with spare slots (``targets.*.slots``)
    servers are named ``slotN``, without them after the instance."""
    try:
        text = lbctl_api.socket_command(stats, f"show servers state {backend}", timeout=1.0)
    except (lbctl_api.CommandError, OSError):
        return None
    for line in text.splitlines()[2:]:
        fields = line.split()
        if len(fields) > 6 and fields[4] == address:
            return int(fields[6])
    return None


def shows(stats: Path, backend: str, port: int, want: int | None) -> bool | None:
    """Whether HAProxy shows ``want`` for HOST:port in ``backend``: None, nothing serving there;
    else that user weight (None: no answer)."""
    try:
        rows = [s for s in lbctl_api.show_servers_state(stats, backend, timeout=1.0)
                if (s.addr, s.port) == (HOST, port)]
    except (lbctl_api.CommandError, OSError):
        return None
    live = [s for s in rows if not s.admin_state & 0x03]  # not in maintenance
    if want is None:
        return not live
    return any(s.uweight == want for s in live)


def reloads(directory: Path) -> int:
    """Reloads the master counted (``show proc``)."""
    return lbctl_api.MasterCLI(directory / "master.sock").show_proc(timeout=5.0).reloads
