"""A real BIND 9 ``named`` for the dns target's integration tests: a throwaway zone
and TSIG keys in a temp dir, on 127.0.0.1 and a high port, as our child (``-g``,
foreground), stopped (TERM, then KILL of its process group) when the block ends.

Why BIND rather than Knot: it is the reference implementation of RFC 2136 and
TSIG, ``update-policy`` gives a per-key grant as operators configure it, and it
refuses a bad key exactly as a production primary does.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from lbctl_testkit.support.backends import free_port
from lbctl_testkit.support.procs import SKIP_PREFIX, _check_alive, _requires, _stop, find_binary, wait_until

requires_named = _requires("named")
ZONE = "example.com."
KEY = "lbctl-key."
OTHER_KEY = "other-key."  # another writer: a person with nsupdate, external-dns...
READER_KEY = "reader-key."  # may transfer the zone, not update it (the server answers REFUSED)
SECRET = base64.b64encode(b"lbctl-test-secret-0123456789abcd").decode()
OTHER_SECRET = base64.b64encode(b"other-test-secret-0123456789abcd").decode()

CONFIG = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query {{ any; }};
}};
controls {{ }};
key "{key}" {{ algorithm hmac-sha256; secret "{secret}"; }};
key "{other}" {{ algorithm hmac-sha256; secret "{other_secret}"; }};
key "{reader}" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "{zone}" {{
    type primary;
    file "{dir}/zone.db";
    update-policy {{ grant {key} zonesub ANY; grant {other} zonesub ANY; }};
    allow-transfer {{ key {key}; key {other}; key {reader}; }};
}};
"""

ZONE_FILE = """\
$TTL 300
@ IN SOA ns1.{zone} hostmaster.{zone} 1 3600 600 86400 30
@ IN NS ns1.{zone}
ns1 IN A 127.0.0.1
mail IN A 192.0.2.25
"""


@dataclass
class NamedProcess:
    proc: subprocess.Popen
    port: int
    directory: Path
    log: Path
    zone: str = ZONE

    def answers(self, node: str, rtype: str) -> tuple[tuple[str, ...], int | None]:
        """What the server answers for ``node`` ``rtype`` over TCP (sorted texts), and the TTL."""
        import dns.message
        import dns.query
        import dns.rdatatype

        answer = dns.query.tcp(dns.message.make_query(node, rtype), "127.0.0.1", port=self.port, timeout=5)
        found = [rrset for rrset in answer.answer if rrset.rdtype == dns.rdatatype.from_text(rtype)]
        return (tuple(sorted(r.to_text() for r in found[0])), found[0].ttl) if found else ((), None)

    def serial(self) -> int:
        return int(self.answers(self.zone, "SOA")[0][0].split()[2])

    def update(self, *changes: tuple[str, str, str, int, list[str]], key: str = OTHER_KEY,
               secret: str = OTHER_SECRET) -> int:
        """Another writer's UPDATE: (op, node, type, ttl, rdatas) with op add | replace | delete; its rcode."""
        import dns.query
        import dns.tsigkeyring
        import dns.update

        msg = dns.update.UpdateMessage(self.zone, keyring=dns.tsigkeyring.from_text({key: secret}), keyname=key)
        for op, node, rtype, ttl, rdatas in changes:
            if op == "delete":
                msg.delete(node, rtype)
            else:
                getattr(msg, op)(node, ttl, rtype, *rdatas)
        return dns.query.tcp(msg, "127.0.0.1", port=self.port, timeout=5).rcode()

    def target_config(self, **extra) -> dict:
        """A ``kind: dns`` target of lbctl.yml for this server (secret in LBCTL_TEST_TSIG)."""
        return {"kind": "dns", "server": "127.0.0.1", "port": self.port, "zone": self.zone,
                "key_name": KEY, "key_secret_env": "LBCTL_TEST_TSIG", **extra}


@contextlib.contextmanager
def running_named(directory: str | os.PathLike[str], timeout: float = 20.0,
                  extra_zone: str = "") -> Iterator[NamedProcess]:
    """Start ``named -g`` with a fresh ``example.com.`` zone; ready once it answers its SOA over TCP."""
    import dns.message
    import dns.query
    import dns.rcode

    binary = find_binary("named")
    if binary is None:
        pytest.skip(f"{SKIP_PREFIX}: named binary not found")
    d = Path(directory)
    port = free_port()
    (d / "named.conf").write_text(CONFIG.format(dir=d, port=port, key=KEY.rstrip("."), secret=SECRET,
                                                other=OTHER_KEY.rstrip("."), other_secret=OTHER_SECRET, reader=READER_KEY.rstrip("."),
                                                zone=ZONE.rstrip(".")))
    (d / "zone.db").write_text(ZONE_FILE.format(zone=ZONE) + extra_zone)
    log_path = d / "named.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([binary, "-g", "-4", "-n", "1", "-c", str(d / "named.conf")],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    n = NamedProcess(proc, port, d, log_path)
    try:
        def ready() -> bool:
            _check_alive(n.proc, "named", n.log)
            answer = dns.query.tcp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=port, timeout=1.0)
            return answer.rcode() == dns.rcode.NOERROR and bool(answer.answer)
        wait_until(ready, timeout, "named to answer its zone's SOA", interval=0.05, ignore=(OSError, EOFError, Exception))
        yield n
    finally:
        _stop(n.proc, signal.SIGTERM)
