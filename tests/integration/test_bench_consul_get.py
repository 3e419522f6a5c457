"""bench/consul_get.py compares like with like: every layer it times reads the same answer."""

import json
from pathlib import Path

from lbctl.config import consul as consul_config
from lbctl.discovery.consul import Client
from lbctl_testkit.emulators.consul import ConsulEmulator
from tests.helpers import bench_script


def test_every_layer_reads_the_same_answer_for_the_same_service():
    bench = bench_script("consul_get")
    with ConsulEmulator() as emu:
        for s in range(3):
            for k in range(2):
                emu.add_service(f"svc-{s}", service_id=f"svc-{s}-{k}", address=f"10.0.{s}.{k + 1}", port=80)
        names = ["svc-0", "svc-2", "svc-1"]
        client = Client(consul_config.consul({"address": f"127.0.0.1:{emu.port}", "services": names}, Path(".")))
        try:
            reads = bench.layers(emu.port, client, names)
            assert list(reads) == ["lbctl_client", "requests_session", "requests_adapter", "urllib3_pool",
                                   "http_client"]
            for i, name in enumerate(names):
                entries = reads["lbctl_client"](i)
                assert {e["Service"]["ID"] for e in entries} == {f"{name}-0", f"{name}-1"}
                for layer, read in reads.items():
                    answer = read(i)
                    assert (answer if layer == "lbctl_client" else json.loads(answer)) == entries, layer
        finally:
            client.close()
