"""A client that stops between its handshake and its request, to provoke the race of a
moving VIP: ``python -m lbctl_testkit.support.raceclient HOST PORT OUT [SOURCE_PORT]``.

It connects, touches ``OUT.connected``, waits for ``OUT.go`` (at most 120 s), sends
one GET on that connection and writes to ``OUT`` ``answer <body>`` or ``failed
<exception>`` (no answer within 3 s, or a reset).  With SOURCE_PORT it connects from
that port (``SO_REUSEADDR``), as a client that reuses its ports does."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path


def main(host: str, port: int, out: Path, source_port: int = 0) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", source_port))
    sock.settimeout(5)
    sock.connect((host, port))
    Path(f"{out}.connected").touch()
    deadline = time.monotonic() + 120
    while not Path(f"{out}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    sock.settimeout(3)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        outcome = f"answer {body.decode().strip()}" if head.startswith(b"HTTP/1.") else "failed empty"
    except OSError as exc:
        outcome = f"failed {type(exc).__name__}"
    Path(out).write_text(outcome)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), *map(int, sys.argv[4:5]))
