"""``python -m lbctl_testkit.emulators.bigip --port 8443``: run the emulator for demos."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import BigIPEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lbctl_testkit.emulators.bigip",
                                     description="Run the BIG-IP iControl REST/AS3 emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--token-timeout", type=int, default=1200)
    parser.add_argument("--device-group", action="append", default=[],
                        help="accept config-sync to this device group (repeatable)")
    args = parser.parse_args(argv)
    emu = BigIPEmulator(args.username, args.password, host=args.host, port=args.port,
                        token_timeout=args.token_timeout,
                        device_groups=tuple(args.device_group))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # clean up the temp CA dir
    with emu:
        print(f"BIG-IP emulator listening on {emu.url}", flush=True)
        print(f"  credentials: {args.username} / {args.password}", flush=True)
        print(f"  CA certificate: {emu.ca_path}", flush=True)
        print(f'  f5-sdk: ManagementRoot("{emu.host}", "{args.username}", "{args.password}", '
              f'port={emu.port}, token=True, verify="{emu.ca_path}")', flush=True)
        print("Ctrl-C to stop.", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
