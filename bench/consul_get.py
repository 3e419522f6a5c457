"""Benchmark: the CPU of one Consul GET, layer by layer of the HTTP client.

Starts the Consul emulator in this process with ``--services`` services of five
instances, then reads ``health/service/<name>`` ``--reads`` times, one service
after another on one thread, through: lbctl's ``consul.Client.health`` (what
the watch and the one-shot commands call), requests' ``Session.get``, requests'
HTTP adapter alone (a prepared request handed to ``HTTPAdapter.send``), a
urllib3 connection pool and ``http.client``.  Each figure is the median over
``--runs`` of the calling thread's CPU per read (the emulator's threads are not
counted), so the layers' costs are the differences.  The last line printed is
one JSON object.  Run it on a quiet machine.

    python bench/consul_get.py [--services 200] [--reads 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import time
from pathlib import Path

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from lbctl_testkit.bench import lbctl_api
from lbctl_testkit.bench.accounting import result_line
from lbctl_testkit.bench.consul import instance_address, instance_id, service_name
from lbctl_testkit.bench.procs import HOST, log, main
from lbctl_testkit.emulators.consul import ConsulEmulator


def cpu_ms_per_read(read, reads: int, runs: int) -> float:
    """The median over ``runs`` of this thread's CPU ms per ``read(i)``, ``reads`` reads a run."""
    read(0)
    per_run = []
    for _ in range(runs):
        start = time.thread_time()
        for i in range(reads):
            read(i)
        per_run.append((time.thread_time() - start) * 1000 / reads)
    return round(statistics.median(per_run), 3)


def layers(port: int, client, names: list[str]) -> dict:
    """Per layer, a function that GETs ``health/service/<names[i]>`` and returns the answer
    (lbctl's client: the decoded entries; the rest: the body's bytes)."""
    base, headers = f"http://{HOST}:{port}", {"Accept-Encoding": "identity"}
    session = requests.Session()
    session.trust_env = False
    pool = urllib3.HTTPConnectionPool(HOST, port, maxsize=1)
    conn = http.client.HTTPConnection(HOST, port)

    def adapter(i: int) -> bytes:
        request = requests.PreparedRequest()
        request.method, request.url, request.body, request.hooks = "GET", f"{base}/v1/health/service/{names[i]}", None, {}
        request.headers = CaseInsensitiveDict(headers)
        return client.adapter.send(request, timeout=30, verify=True, cert=None, proxies={}).content

    def plain(i: int) -> bytes:
        conn.request("GET", f"/v1/health/service/{names[i]}", headers=headers)
        return conn.getresponse().read()

    return {
        "lbctl_client": lambda i: client.health(names[i])[1],
        "requests_session": lambda i: session.get(f"{base}/v1/health/service/{names[i]}", headers=headers).content,
        "requests_adapter": adapter,
        "urllib3_pool": lambda i: pool.urlopen("GET", f"/v1/health/service/{names[i]}", headers=headers).data,
        "http_client": plain,
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    emu = ConsulEmulator()
    emu.start()
    try:
        with emu.transaction():
            for s in range(args.services):
                for k in range(5):
                    emu.add_service(service_name(s), service_id=instance_id(s, k), address=instance_address(s, k),
                                    port=8080, status="passing")
        names = [service_name(i % args.services) for i in range(args.reads)]
        client = lbctl_api.consul_client.Client(lbctl_api.consul_config.consul(
            {"address": f"{HOST}:{emu.port}", "services": names[:1]}, Path(".")))
        reads = layers(emu.port, client, names)
        result = {}
        for name, read in reads.items():
            result[name] = cpu_ms_per_read(read, args.reads, args.runs)
            log(f"{name}: {result[name]} ms of CPU per read")
        client.close()
    finally:
        emu.stop()
    result_line({"services": args.services, "reads": args.reads, "runs": args.runs, "cpu_ms_per_read": result})


if __name__ == "__main__":
    main(run)
