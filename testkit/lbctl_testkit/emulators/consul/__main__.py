"""``python -m lbctl_testkit.emulators.consul --port 8500``: run the emulator for demos."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .connlimit import DEFAULT_MAX_CONNS_PER_CLIENT
from .server import ConsulEmulator


class _Hello(BaseHTTPRequestHandler):
    """A demo backend: ``200 <name>`` on every path, health checks included."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        body = f"{self.server.name}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Backend(ThreadingHTTPServer):
    """A demo backend's server.  A health check that closes its connection before the
    answer is written (HAProxy's do, with a reset) is not an error worth a traceback in
    the terminal the demo runs in; anything else still prints one."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def _backend(name: str, host: str) -> int:
    """Serve ``name`` on a free port of ``host`` in a daemon thread; the port."""
    server = _Backend((host, 0), _Hello)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name=f"demo {name}", daemon=True).start()
    return server.server_address[1]


def demo(c: ConsulEmulator, host: str = "127.0.0.1") -> list[str]:
    """A small catalog whose instances answer: ``web`` on two extra nodes, ``db`` on the
    agent node, each a demo HTTP backend on ``host``.  Returns one line per instance."""
    ports = {sid: _backend(sid, host) for sid in ("web-1", "web-2", "db-1")}
    with c.transaction():
        c.add_node("node-b", host, meta={"rack": "r1"})
        c.add_node("node-c", host, meta={"rack": "r2"})
        c.add_service("web", node="node-b", service_id="web-1", port=ports["web-1"], tags=["v1"])
        c.add_service("web", node="node-c", service_id="web-2", address=host, port=ports["web-2"],
                      tags=["v1", "canary"], meta={"env": "prod"}, weights={"Passing": 10, "Warning": 1})
        c.add_service("db", service_id="db-1", address=host, port=ports["db-1"], tags=["primary"])
    return [f"  {sid}: http://{host}:{port}/" for sid, port in ports.items()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lbctl_testkit.emulators.consul", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--node", default="node-a", help="the agent's node name")
    p.add_argument("--datacenter", default="dc1")
    p.add_argument("--demo", action="store_true",
                   help="preload services web (2 instances) and db (1), each a small HTTP server on loopback")
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
        instances = demo(c) if args.demo else []
        print(f"consul emulator listening on {c.url} (node {args.node}, dc {args.datacenter})", flush=True)
        if instances:
            print("demo instances (each answers its name):", *instances, sep="\n", flush=True)
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
