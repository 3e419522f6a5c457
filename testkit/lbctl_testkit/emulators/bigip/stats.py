"""Pool member statistics (``.../members[/<m>]/stats``), as a Store mixin.

Only what lbctl reads is live: ``serverside.curConns`` (set with
``BigIPEmulator.set_member_connections``) and the availability that follows
from the admin state, the monitor and ``set_member_health``.  Shapes are those
of a 14.1/15.1 device.
"""

from __future__ import annotations

from typing import Any

from . import names


class StatsOps:
    """Mixin over Store + PoolOps."""

    health: dict[tuple[str, str], str]
    conns: dict[tuple[str, str], int]

    def member_stats(self, pool: str, member: str | None) -> dict[str, Any]:
        pool_obj = self.get("pool", pool, "Pool")
        base = f"tm/ltm/pool/{names.path_to_segment(pool)}/members"
        members = ([self.member_or_404(pool, member)] if member
                   else self.pool_members(pool))
        entries = {}
        for m in members:
            path = f"{base}/{names.path_to_segment(m['fullPath'])}/stats"
            entries[f"https://localhost/mgmt/{path}".replace("%", "%25")] = {"nestedStats": {
                "kind": "tm:ltm:pool:members:membersstats",
                "selfLink": names.link(path, self.version),
                "entries": self._stat_entries(pool_obj, m)}}
        path = f"{base}/{names.path_to_segment(member)}/stats" if member else f"{base}/stats"
        kind = "membersstats" if member else "memberscollectionstats"
        return {"kind": f"tm:ltm:pool:members:{kind}", "generation": self.generation,
                "selfLink": names.link(path, self.version), "entries": entries}

    def _stat_entries(self, pool_obj: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
        key = (pool_obj["fullPath"], m["fullPath"])
        parsed = names.parse_member(m["name"])
        enabled = "disabled" if m["session"] == "user-disabled" else "enabled"
        monitored = m["monitor"] != "default" or "monitor" in pool_obj
        health = self.health.get(key, "up")
        avail = ("offline" if m["state"] == "user-down" or (monitored and health == "down")
                 else "available" if monitored else "unknown")
        reason = ("Pool member does not have service checking enabled" if not monitored
                  else f"Pool member is {health}")
        return {
            "addr": {"description": m["address"]},
            "curSessions": {"value": 0},
            "monitorRule": {"description": pool_obj.get("monitor", "none").strip()},
            "monitorStatus": {"description": health if monitored else "unchecked"},
            "nodeName": {"description": m["_node"]},
            "poolName": {"description": pool_obj["fullPath"]},
            "port": {"value": parsed.port},
            "serverside.curConns": {"value": self.conns.get(key, 0)},
            "serverside.maxConns": {"value": self.conns.get(key, 0)},
            "serverside.totConns": {"value": self.conns.get(key, 0)},
            "sessionStatus": {"description": enabled},
            "status.availabilityState": {"description": avail},
            "status.enabledState": {"description": enabled},
            "status.statusReason": {"description": reason},
            "totRequests": {"value": 0}}
