"""``python -m lbctl.emulators.consul --port 8500``: run the emulator for demos."""

from __future__ import annotations

import argparse
import signal
import threading

from .connlimit import DEFAULT_MAX_CONNS_PER_CLIENT
from .server import ConsulEmulator


def _demo(c: ConsulEmulator) -> None:
    """A small catalog: ``web`` on two extra nodes, ``db`` on the agent node."""
    with c.transaction():
        c.add_node("node-b", "10.0.1.7", meta={"rack": "r1"})
        c.add_node("node-c", "10.0.1.8", meta={"rack": "r2"})
        c.add_service("web", node="node-b", service_id="web-1", port=8080, tags=["v1"])
        c.add_service("web", node="node-c", service_id="web-2", address="10.0.1.80", port=8080,
                      tags=["v1", "canary"], meta={"env": "prod"}, weights={"Passing": 10, "Warning": 1})
        c.add_service("db", service_id="db-1", port=5432, tags=["primary"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lbctl.emulators.consul", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--node", default="node-a", help="the agent's node name")
    p.add_argument("--datacenter", default="dc1")
    p.add_argument("--demo", action="store_true", help="preload a few services")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--http-max-conns-per-client", type=int, default=DEFAULT_MAX_CONNS_PER_CLIENT,
                   metavar="N", help="concurrent connections per client IP before 429, like Consul's "
                   "limits.http_max_conns_per_client (default %(default)s; 0: no cap)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ConsulEmulator(args.host, args.port, node_name=args.node, datacenter=args.datacenter,
                        seed=args.seed, verbose=args.verbose,
                        max_conns_per_client=args.http_max_conns_per_client) as c:
        if args.demo:
            _demo(c)
        print(f"consul emulator listening on {c.url} (node {args.node}, dc {args.datacenter})", flush=True)
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
