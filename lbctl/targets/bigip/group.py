"""A BIG-IP device group as one target sees it (docs/bigip.md#device-groups): which
of its ``devices`` is ACTIVE (lbctl writes there), and a config-sync that counts only
once ``cm/sync-status`` says In Sync."""

from __future__ import annotations

from typing import Callable

from lbctl.errors import LbctlError, ReloadError, Temporary
from lbctl.targets.bigip.icontrol import BigIP

FAILED = ("Sync Failure", "Disconnected", "Standalone")  # no use waiting: the sync did not happen
POLL = 1.0


def active(devices: list[BigIP]) -> BigIP:
    """The first device whose ``cm/failover-status`` is ACTIVE.

    :raises Temporary: none is (each named with its state or why it did not answer).
    """
    seen = []
    for device in devices:
        try:
            state = device.failover_state()
        except LbctlError as exc:
            seen.append(f"{device.access.url}: {exc}")
            continue
        if state == "ACTIVE":
            return device
        seen.append(f"{device.access.url} is {state}")
    raise Temporary(f"no ACTIVE device among {len(devices)}: {'; '.join(seen)}")


def config_sync(device: BigIP, group: str, timeout: float, clock: Callable[[], float],
                sleep: Callable[[float], None]) -> None:
    """``config-sync to-group``, then wait until the group is In Sync.

    :raises ReloadError: the sync failed (Sync Failure, a peer Disconnected, the device
        Standalone), or the group was not In Sync within ``timeout`` (Syncing, Changes Pending).
    """
    device.config_sync(group)
    deadline = clock() + timeout
    while True:
        status, summary = device.sync_status()
        if status == "In Sync":
            return
        if status in FAILED:
            raise ReloadError(f"{device.name}: config-sync to group {group} failed: {status} ({summary})")
        if clock() >= deadline:
            raise ReloadError(f"{device.name}: device group {group} not In Sync {timeout:g}s after config-sync: "
                              f"{status} ({summary})")
        sleep(POLL)
