"""Benchmark: a zone of 1,000 published names x 5 members kept by ``lbctl watch`` from Consul.

A real BIND 9 primary (the test kit's ``running_named``), the Consul emulator with one
service per name (``lb-dns-name`` Meta), and ``lbctl watch`` as a real process.  After the
first publication, 200 membership changes (an instance goes critical, or comes back), one
at a time: each is timed from the change in Consul to the primary answering the new A
RRset (asked directly over TCP).  A reader thread asks for the name being changed the
whole time: any answer that is neither the old RRset nor the new one is a partial answer.
UPDATE messages per change come from the SOA serial (the server raises it once per
UPDATE); bytes per change from the watch's (verbose) log lines.

    python bench/dns.py [--names 1000] [--members 5] [--changes 200]

The last line printed is one JSON object: names, changes, p50_ms, p99_ms,
updates_per_change, bytes_per_change, partial_answers.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Python puts this file's directory first on the path, where this file would hide dnspython's
# package ``dns``: take it off (nothing here imports from bench/).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import yaml  # noqa: E402

from lbctl_testkit.bench import procs  # noqa: E402
from lbctl_testkit.bench.accounting import percentile, result_line  # noqa: E402
from lbctl_testkit.emulators.consul import ConsulEmulator  # noqa: E402
from lbctl_testkit.support.named import SECRET, running_named  # noqa: E402

SENT = re.compile(r"(\d+) RRsets changed in (\d+) UPDATE message\(s\), (\d+) bytes")


class Reader(threading.Thread):
    """Asks for the name in flight over and over; counts answers that are neither its old nor its new RRset."""

    def __init__(self, named) -> None:
        super().__init__(daemon=True)
        self.named, self.flight, self.partial, self.answers, self.stop = named, None, 0, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            flight = self.flight
            if flight is None:
                time.sleep(0.001)
                continue
            node, old, new = flight
            have = self.named.answers(node, "A")[0]
            self.answers += 1
            if self.flight is flight and have not in (old, new):
                self.partial += 1


def wait_for(named, node: str, want: tuple[str, ...], timeout: float = 60.0) -> float:
    """Poll the primary until ``node`` A answers ``want``; the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if named.answers(node, "A")[0] == want:
            return time.monotonic()
        time.sleep(0.002)
    raise SystemExit(f"{node} never answered {want}")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    os.environ["LBCTL_TEST_TSIG"] = SECRET
    with tempfile.TemporaryDirectory(prefix="lbctl-bench-dns-") as tmp, running_named(tmp) as named, \
            ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0) as consul:
        d = Path(tmp)
        services = [f"svc-{i:04d}" for i in range(args.names)]
        addresses = {}
        for i, svc in enumerate(services):
            for m in range(args.members):
                addresses[svc, m] = f"10.{i // 250}.{i % 250}.{m + 1}"
                consul.add_service(svc, service_id=f"{svc}-{m}", address=addresses[svc, m], port=8080,
                                   meta={"lb-dns-name": svc, "lb-dns-types": "A"})
        config = {"source": {"consul": {"address": f"127.0.0.1:{consul.port}", "services": services, "wait": "5s",
                                        "min_query_interval": "10ms"}},
                  "watch": {"min_wait": "0s", "max_wait": "1s", "retry_max": "1s"}, "state_dir": "state",
                  "targets": {"zone": named.target_config(timeout="30s")}}
        (d / "lbctl.yml").write_text(yaml.safe_dump(config))
        watch = procs.popen([*procs.lbctl_argv(), "watch", "--verbose", "-c", str(d / "lbctl.yml")], d / "watch.log")
        start = time.monotonic()
        up = {svc: tuple(sorted(addresses[svc, m] for m in range(args.members))) for svc in services}
        wait_for(named, f"{services[-1]}.{named.zone}", up[services[-1]], timeout=300)
        procs.log(f"first publication of {args.names} names: {time.monotonic() - start:.1f}s")
        while not SENT.search((d / "watch.log").read_text()):  # its log line comes after its verify
            time.sleep(0.05)
        log_mark = (d / "watch.log").stat().st_size
        serial = named.serial()
        reader = Reader(named)
        reader.start()
        down: set[tuple[str, int]] = set()
        latencies = []
        for n in range(args.changes):
            svc = rng.choice(services)
            gone = [m for m in range(args.members) if (svc, m) in down]
            m = gone[0] if gone else rng.randrange(args.members)  # at most one of five down: the guard's limit holds
            old = tuple(sorted(addresses[svc, k] for k in range(args.members) if (svc, k) not in down))
            down.symmetric_difference_update({(svc, m)})
            new = tuple(sorted(addresses[svc, k] for k in range(args.members) if (svc, k) not in down))
            reader.flight = (f"{svc}.{named.zone}", old, new)
            t0 = time.monotonic()
            consul.set_service_health(f"{svc}-{m}", "passing" if (svc, m) not in down else "critical")
            latencies.append((wait_for(named, f"{svc}.{named.zone}", new) - t0) * 1000)
            reader.flight = None
        reader.stop.set()
        reader.join()
        updates = named.serial() - serial
        sent = SENT.findall((d / "watch.log").read_text()[log_mark:])
        procs.stop_group(watch)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    byte_count = sum(int(b) for _, _, b in sent)
    print(f"{args.changes} changes over {args.names} names x {args.members}: p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
          f"{updates} UPDATEs ({byte_count} bytes); reader: {reader.answers} answers, {reader.partial} partial",
          file=sys.stderr)
    result_line({"names": args.names, "changes": args.changes, "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                 "updates_per_change": round(updates / args.changes, 2),
                 "bytes_per_change": round(byte_count / max(1, len(sent))), "partial_answers": reader.partial})


if __name__ == "__main__":
    procs.main(run)
