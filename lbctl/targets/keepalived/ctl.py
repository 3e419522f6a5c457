"""keepalived's process, its reload and the VRRP state lbctl keeps of it
(docs/high-availability.md).

Reload: keepalived re-reads its files on SIGHUP and says nothing when done, but
with ``reload_file`` (in every keepalived.conf lbctl renders) it deletes that
file once it has read them: lbctl writes the file, signals, and waits for it to go.
A file the parser refused leaves the old configuration running; ``keepalived -t``
ran on the candidate before, so that does not happen to lbctl's files.
The VRRP state of each instance is what keepalived last told ``lbctl
vrrp-notify`` (``<state_dir>/vrrp/<instance>.json``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from lbctl.errors import ReloadError
from lbctl.targets import files
from lbctl.targets.procfs import read_pid

_POLL = 0.02
STATES = {"STOP": 0, "DELETED": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}  # lbctl_vrrp_state's values


def running(pid_file: str | os.PathLike[str]) -> int | None:
    """The PID of the keepalived parent the pid file names, or None if it does not run."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, state = stat[stat.find("(") + 1:stat.rfind(")")], stat.rsplit(")", 1)[-1].split()[0]
    return pid if name.startswith("keepalived") and state not in ("Z", "X") else None


def reload_file(pid_file: str) -> Path:
    """Where the rendered ``reload_file`` is (beside the pid file)."""
    return Path(f"{pid_file}.reload")


def reload(pid_file: str, timeout: float) -> None:
    """SIGHUP and wait until keepalived has read its files.

    :raises ReloadError: it does not run, or did not finish reading within ``timeout``.
    """
    pid = running(pid_file)
    if pid is None:
        raise ReloadError(f"keepalived is not running (pid file {pid_file})")
    marker = reload_file(pid_file)
    try:
        marker.write_text("lbctl\n")
    except OSError as exc:
        raise ReloadError(f"cannot write keepalived's reload_file {marker}: {exc.strerror}") from None
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not marker.exists():
            return
        if running(pid_file) is None:
            raise ReloadError(f"keepalived {pid} exited during reload")
        time.sleep(_POLL)
    marker.unlink(missing_ok=True)
    raise ReloadError(f"keepalived reload not confirmed within {timeout:g}s (reload_file {marker} still there: "
                      "is the running keepalived.conf one that lbctl rendered?)")


def states_dir(state_dir: Path) -> Path:
    return state_dir / "vrrp"


def record_state(state_dir: Path, instance: str, state: str, priority: int) -> dict:
    """Keep what keepalived's notify said of ``instance``; the entry kept."""
    entry = {"instance": instance, "state": state, "priority": priority, "since": time.time()}
    directory = states_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    files.atomic_write(directory / f"{instance}.json", json.dumps(entry) + "\n")
    return entry


def read_states(state_dir: Path) -> dict[str, dict]:
    """Each instance's last notified state (none yet: not in the result)."""
    out = {}
    for path in sorted(states_dir(state_dir).glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and entry.get("state") in STATES:
            out[path.stem] = entry
    return out


def set_drain(drain_file: str, value: int) -> None:
    """What keepalived's ``track_file`` adds to the priority (0: normal); read by it on change."""
    files.atomic_write(Path(drain_file), f"{value}\n")


def drain_value(drain_file: str) -> int:
    try:
        text = Path(drain_file).read_text().strip()
    except OSError:
        return 0
    return int(text) if text.lstrip("-").isdigit() else 0


def arp_quiet(interface: str, sysctl: Path = Path("/proc/sys/net/ipv4/conf")) -> bool:
    """Whether this host answers ARP only for addresses on the interface asked
    (``arp_ignore`` >= 1; the kernel takes the larger of ``all`` and the interface's)."""
    values = []
    for name in ("all", interface):
        try:
            values.append(int((sysctl / name / "arp_ignore").read_text()))
        except (OSError, ValueError):
            values.append(0)
    return max(values) >= 1


def vips(text: str) -> set[str]:
    """The virtual IPs of a keepalived.conf lbctl rendered (its ``static_ipaddress`` block).  Pure."""
    block = text.split("static_ipaddress {", 1)[1].split("}", 1)[0] if "static_ipaddress {" in text else ""
    return {line.split()[0].split("/")[0] for line in block.splitlines() if line.strip()}
