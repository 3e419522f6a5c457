"""HTTP backends for the benchmarks: one that answers ``ok`` (threads, in this process or a
child), and keep-alive asyncio backends ``b0``, ``b1``... in a child process."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lbctl_testkit.bench.procs import HOST


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that does not print the hang-ups of HAProxy and the probes."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # HAProxy and the probes hang up as they please


class OkHandler(BaseHTTPRequestHandler):
    """Every GET: 200, body ``ok``, keep-alive."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def serve_ok() -> QuietServer:
    """An ``ok`` backend on a free loopback port, served by a daemon thread (``.shutdown()`` it)."""
    server = QuietServer((HOST, 0), OkHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _ok_backends_main(conn, count: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    servers = [serve_ok() for _ in range(count)]
    conn.send([s.server_address[1] for s in servers])
    while not conn.poll(1.0):
        if os.getppid() == 1:
            return


def ok_backends(count: int) -> tuple[mp.Process, list[int]]:
    """``count`` ``ok`` backends in a forked child process (a daemon: it goes with the bench): it and their ports."""
    ctx = mp.get_context("fork")
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=_ok_backends_main, args=(child, count), daemon=True)
    proc.start()
    if not conn.poll(30):
        raise RuntimeError("the backends did not start")
    return proc, conn.recv()


def named_backends_main(count: int, ports_out, stop) -> None:
    """Serve ``count`` HTTP/1.1 keep-alive backends (asyncio) until ``stop`` is set.

    Every request gets 200, body ``b<i>`` and ``X-Backend: b<i>`` (``/slow?ms=N``: after
    N ms; used by ad-hoc experiments, not by the bench itself); a connection
    stays open unless the request asks to close it (or is HTTP/1.0 without keep-alive).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    async def serve() -> None:
        servers = []
        for i in range(count):
            name = f"b{i}".encode()

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name=name) -> None:
                try:
                    while True:
                        head = await reader.readuntil(b"\r\n\r\n")
                        lines = head.decode("latin-1").split("\r\n")
                        version = lines[0].rsplit(" ", 1)[-1].upper()
                        path = lines[0].split(" ")[1].encode() if lines[0].count(" ") >= 2 else b"/"
                        headers = {}
                        for line in lines[1:]:
                            k, _, v = line.partition(":")
                            headers[k.strip().lower()] = v.strip().lower()
                        length = int(headers.get("content-length") or 0)
                        if length:
                            await reader.readexactly(length)
                        if path.startswith(b"/slow?ms="):  # /slow?ms=N answers after N ms
                            await asyncio.sleep(int(path[9:] or 0) / 1000)
                        conn = headers.get("connection", "")
                        keep = "close" not in conn if version == "HTTP/1.1" else "keep-alive" in conn
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Backend: " + name
                                     + b"\r\nContent-Length: " + str(len(name)).encode()
                                     + (b"\r\nConnection: keep-alive" if keep else b"\r\nConnection: close")
                                     + b"\r\n\r\n" + name)
                        await writer.drain()
                        if not keep:
                            break
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
                    pass
                finally:
                    writer.close()

            servers.append(await asyncio.start_server(handle, HOST, 0, backlog=1024, reuse_address=True))
        ports_out.send([s.sockets[0].getsockname()[1] for s in servers])
        ports_out.close()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for s in servers:
            s.close()

    asyncio.run(serve())
