"""A sync-failover device group of emulated BIG-IPs (docs/testing.md#the-big-ip-emulator):
``config-sync to-group`` copies the device's configuration to its peers, after
``lag`` seconds of "Syncing", or fails ("Sync Failure") when ``failure`` is set;
``cm/sync-status`` says In Sync only when every device holds the configuration last
synced and none changed since.  Failover states: the first device is ACTIVE, the
others STANDBY (``cm/failover-status``); ``fail_over`` swaps them.

The statuses and colours are BIG-IP's (F5 K13946: In Sync green, Changes Pending
yellow, Syncing blue, Sync Failure red); a device does not refuse writes as
standby, as a real one does not.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

RUNTIME = ("health", "conns")  # the Ltm's runtime state: not configuration, never synced


@dataclass
class DeviceGroup:
    name: str
    members: list[Any]  # emulator Devices
    clock: Callable[[], float]
    lag: float = 0.0  # seconds from config-sync to the peers holding the configuration
    failure: str | None = None  # set: every config-sync fails with this summary
    failed: str | None = None  # the last config-sync failed (until one succeeds)
    pending: tuple[Any, dict, float] | None = field(default=None)  # (source, its config, due)
    syncs: int = 0

    def __post_init__(self) -> None:
        for i, device in enumerate(self.members):
            device.group = self
            device.failover = "ACTIVE" if i == 0 else "STANDBY"
            if self.name not in device.device_groups:
                device.device_groups.append(self.name)

    def sync_from(self, source: Any) -> None:
        """``config-sync to-group`` on ``source`` (under its lock)."""
        self.settle()
        if self.failure:
            self.failed = self.failure
            return
        self.failed = None
        config = {k: copy.deepcopy(v) for k, v in vars(source.ltm).items() if k not in RUNTIME}
        self.pending = (source, config, self.clock() + self.lag)
        self.settle()

    def settle(self) -> None:
        """The peers take a sync that is due."""
        if self.pending is None or self.clock() < self.pending[2]:
            return
        source, config, _ = self.pending
        self.pending = None
        self.syncs += 1
        for device in self.members:
            if device is not source:
                with device.lock:
                    vars(device.ltm).update(copy.deepcopy(config))
            device.synced_generation = config["generation"] if device is source else device.ltm.generation

    def status(self) -> tuple[str, str, str]:
        """(status, colour, summary) as every member's ``cm/sync-status`` shows it."""
        self.settle()
        if self.failed:
            return "Sync Failure", "red", self.failed
        if self.pending is not None:
            return "Syncing", "blue", f"syncing to group {self.name}"
        changed = [d.hostname for d in self.members if d.synced_generation != d.ltm.generation]
        if not changed:
            return "In Sync", "green", "All devices in the device group are in sync"
        if len(changed) > 1:
            return "Changes Pending", "yellow", f"There is a possible change conflict between {', '.join(changed)}."
        return "Changes Pending", "yellow", f"{changed[0]}: Changes Pending; sync it to group {self.name}"

    def fail_over(self) -> None:
        """The ACTIVE device becomes STANDBY and the next one ACTIVE."""
        states = [d.failover for d in self.members]
        active = states.index("ACTIVE")
        for i, device in enumerate(self.members):
            device.failover = "ACTIVE" if i == (active + 1) % len(self.members) else "STANDBY"


def failover_status(device: Any) -> dict[str, Any]:
    """``GET /mgmt/tm/cm/failover-status``."""
    state = device.failover
    return {"kind": "tm:cm:failover-status:failover-statusstats",
            "selfLink": f"https://localhost/mgmt/tm/cm/failover-status?ver={device.version}",
            "entries": {"https://localhost/mgmt/tm/cm/failover-status/0": {"nestedStats": {"entries": {
                "color": {"description": "green" if state == "ACTIVE" else "gray"},
                "status": {"description": state},
                "summary": {"description": "1/1 active" if state == "ACTIVE" else "1/1 standby"}}}}}}
