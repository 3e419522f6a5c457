#!/usr/bin/env python3
"""Processes for the role's test harness (tests/test.yml), on 127.0.0.1 only.

    harness.py backends RUN_DIR LIFETIME NAME=PORT...   start HTTP backends (if not running)
    harness.py haproxy RUN_DIR LIFETIME BINARY CONFIG   start haproxy -W (if not running)
    harness.py stop RUN_DIR                              stop everything started in RUN_DIR

Every process runs in a session of its own, its pid in RUN_DIR/<name>.pid, and
ends by itself after LIFETIME seconds even if nobody stops it. ``stop`` sends
SIGTERM to each process group, then SIGKILL after 5 s. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


def alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:  # a zombie, or a pid reused by something else, is not ours
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


def wait_for(what: str, predicate, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            sys.exit(f"timed out after {timeout:g}s waiting for {what}\n{tail}")
        time.sleep(0.05)


def accepting(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def spawn(run: Path, name: str, argv: list[str]) -> Path:
    """Start ``argv`` in a new session, detached from us; its output goes to RUN/<name>.log."""
    log = run / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    (run / f"{name}.pid").write_text(f"{proc.pid}\n")
    return log


def backends(run: Path, lifetime: str, specs: list[str]) -> None:
    for spec in specs:
        name, port = spec.split("=")
        if alive(run / f"backend-{name}.pid") and accepting(int(port)):
            print(f"backend {name} already runs on port {port}")
            continue
        log = spawn(run, f"backend-{name}", [sys.executable, __file__, "serve", name, port, lifetime])
        wait_for(f"backend {name} on port {port}", lambda: accepting(int(port)), 10, log)
        print(f"started backend {name} on port {port}")


def serve(name: str, port: str, lifetime: str) -> None:
    """Answer every GET with 200, the body and the X-Backend header being ``name``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("X-Backend", name)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, int(port)), Handler)
    server.daemon_threads = True
    threading.Timer(float(lifetime), server.shutdown).start()
    server.serve_forever()


def haproxy(run: Path, lifetime: str, binary: str, config: str) -> None:
    """``haproxy -W -f CONFIG -S RUN/master.sock,level,admin`` under a guard that ends it
    after LIFETIME seconds. Ready once the master CLI lists a worker."""
    sock = run / "master.sock"
    if alive(run / "haproxy.pid") and workers(sock):
        print("haproxy already runs")
        return
    argv = [binary, "-W", "-f", config, "-S", f"{sock},level,admin"]
    log = spawn(run, "haproxy", [sys.executable, __file__, "guard", lifetime, *argv])
    wait_for("the haproxy master to list a worker", lambda: workers(sock), 15, log)
    print("started haproxy")


def workers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"show proc\n")
            s.shutdown(socket.SHUT_WR)  # the master answers, then closes
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return False
    return any(line.split()[1:2] == ["worker"] for line in data.decode(errors="replace").splitlines())


def guard(lifetime: str, argv: list[str]) -> None:
    """Run ``argv`` as our child (same process group) for at most ``lifetime`` seconds."""
    child = subprocess.Popen(argv)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        child.wait(float(lifetime))
    except subprocess.TimeoutExpired:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(os.getpgid(0), signal.SIGKILL)
    sys.exit(child.wait())


def stop(run: Path) -> None:
    for pidfile in sorted(run.glob("*.pid")):
        try:
            pid = int(pidfile.read_text())
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        try:
            os.killpg(pid, signal.SIGTERM)  # each was started as the leader of its own session
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and group_alive(pid):
                time.sleep(0.05)
            if group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        pidfile.unlink(missing_ok=True)
        print(f"stopped {pidfile.stem}")


def group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "backends":
        backends(Path(args[0]), args[1], args[2:])
    elif command == "haproxy":
        haproxy(Path(args[0]), *args[1:4])
    elif command == "stop":
        stop(Path(args[0]))
    elif command == "serve":
        serve(*args[:3])
    elif command == "guard":
        guard(args[0], args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
