"""Which services hold a blocking query of their own: the ones that changed last.

A service being deployed, drained or scaled tends to change again, so the watcher
keeps a blocking ``/v1/health/service/<name>?index=`` query on each of the ``HOT``
services that changed last (``hot_slots``: within the connection budget), which
answers any change of it, including edits that no check shows.  Pure: the watcher
calls it with its lock held (docs/consul.md, "Hot services").
"""

from __future__ import annotations

HOT = 8  # at most this many services get a blocking query of their own
FEEDS = 2  # connections the two blocking feed queries hold


def hot_slots(max_connections: int) -> int:
    """Half the connections the feeds leave, at most ``HOT`` (at least one reader is left)."""
    return min(HOT, (max_connections - FEEDS) // 2)


class HotSet:
    def __init__(self) -> None:
        self.held: set[str] = set()  # services whose query is held (or about to be sent)

    def __contains__(self, name: str) -> bool:
        return name in self.held

    def hottest(self, recent: dict[str, None], wanted: set[str]) -> list[str]:
        """The watched services changed last, last first, at most ``HOT``; ``recent`` is
        in the order they changed (the last one last)."""
        out: list[str] = []
        for name in reversed(recent):
            if len(out) == HOT:
                break
            if name in wanted:
                out.append(name)
        return out

    def pick(self, name: str | None, recent: dict[str, None], wanted: set[str]) -> tuple[str | None, str | None]:
        """For a query that held ``name`` (None: none yet): ``(the service to hold now or
        None, the service it let go or None)``.  A query keeps its service while it is
        among the hottest; else it takes the first of them that no other query holds."""
        hottest = self.hottest(recent, wanted)
        if name is not None and name in hottest:
            return name, None
        if name is not None:
            self.held.discard(name)
        free = next((n for n in hottest if n not in self.held), None)
        if free is not None:
            self.held.add(free)
        return free, name

    def drop(self, name: str) -> None:
        self.held.discard(name)
