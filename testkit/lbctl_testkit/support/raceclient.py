"""A client that stops between its handshake and its request, to provoke the race of a
moving VIP: ``python -m lbctl_testkit.support.raceclient HOST PORT OUT``.

It connects, touches ``OUT.connected``, waits for ``OUT.go`` (at most 120 s), sends
one GET on that connection and writes to ``OUT`` ``answer <body>`` or ``failed
<exception>`` (no answer within 3 s, or a reset)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path


def main(host: str, port: int, out: Path) -> None:
    sock = socket.create_connection((host, port), 5)
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
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
