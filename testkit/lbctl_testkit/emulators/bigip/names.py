"""Names, paths and links: the pure string rules of iControl REST.

* URI segments ``~Part~name`` / ``~Part~Folder~name`` / ``name`` (Common) map to
  full paths ``/Part/name`` / ``/Part/Folder/name`` / ``/Common/name``.
* Member names are ``<node>:<port>`` (IPv6 ``<addr>.<port>``, route domains ``%N``).
* ``selfLink`` is ``https://localhost/mgmt/<path>?ver=<ver>`` with ``%`` escaped.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .errors import IcrError, API_PROPERTY, bad_value

SERVICES = {"any": 0, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
            "http": 80, "pop3": 110, "imap": 143, "https": 443, "ldap": 389,
            "mysql": 3306, "http-alt": 8080}
PORT_NAMES = {80: "http", 443: "https", 0: "any", 22: "ssh", 21: "ftp", 25: "smtp",
              53: "domain", 8080: "http-alt"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:%\-]+$")


def segment_to_path(segment: str, default_partition: str = "Common") -> str:
    """``~P~f~n`` -> ``/P/f/n``; a bare ``n`` -> ``/Common/n``."""
    if segment.startswith("~"):
        return "/" + "/".join(segment[1:].split("~"))
    return f"/{default_partition}/{segment}"


def path_to_segment(full_path: str) -> str:
    return "~" + full_path.lstrip("/").replace("/", "~")


def split_path(full_path: str) -> tuple[str, str | None, str]:
    """``/P/f1/n`` -> (``P``, ``f1``, ``n``); ``/P/n`` -> (``P``, None, ``n``)."""
    parts = full_path.strip("/").split("/")
    if len(parts) < 2:
        return parts[0], None, parts[0]
    sub = "/".join(parts[1:-1]) or None
    return parts[0], sub, parts[-1]


def join_path(partition: str, sub_path: str | None, name: str) -> str:
    sub = (sub_path or "").strip("/")
    return "/" + "/".join(p for p in (partition, sub, name) if p)


def folder_of(full_path: str) -> str:
    return full_path.rsplit("/", 1)[0]


def resolve(ref: str, partition: str) -> str:
    """A reference as tmsh resolves it: absolute, or relative to ``partition``."""
    ref = ref.strip()
    return ref if ref.startswith("/") else f"/{partition}/{ref}"


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name or not _NAME_RE.match(name):
        # [unverified] text; real devices reject such names in the tmsh parser.
        raise IcrError(400, f"The requested object name ({name}) is invalid.", API_PROPERTY)
    return name


def link(path: str, ver: str, query: str = "") -> str:
    """``path`` starts after ``/mgmt/``; ``query`` is the echoed query (without ver)."""
    q = f"{query}&ver={ver}" if query else f"ver={ver}"
    return f"https://localhost/mgmt/{path.replace('%', '%25')}?{q}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def is_ipv6(text: str) -> bool:
    return is_ip(text) and ":" in text


@dataclass(frozen=True)
class MemberName:
    node: str   # node name or address, with any %rd
    port: int

    @property
    def name(self) -> str:
        sep = "." if ":" in self.node else ":"
        return f"{self.node}{sep}{self.port}"

    def describe(self, partition: str) -> str:
        """``/P/10.0.0.1 80`` as mcpd prints a member in messages."""
        return f"/{partition}/{self.node} {self.port}"


def parse_port(text: str, whole: str) -> int:
    if text.isdigit():
        port = int(text)
    elif text in SERVICES:
        port = SERVICES[text]
    else:
        raise bad_value("name", whole)
    if not 0 <= port <= 65535:
        raise bad_value("name", whole)
    return port


def parse_member(name: object) -> MemberName:
    """``10.0.0.1:80`` / ``2001:db8::1.80`` / ``10.0.0.1%2:80`` / ``web1:http``."""
    if not isinstance(name, str) or not name:
        raise bad_value("name", name)
    missing = IcrError(400, f"A port number or service name is missing for {name}. Please "
                            f"specify a port number or service name using the syntax "
                            f"{name}:<port>.", API_PROPERTY)
    if name.count(":") > 1:                      # IPv6: addr.port
        if "." not in name or is_ip(name):
            raise missing
        node, port = name.rsplit(".", 1)
        if not is_ipv6(node):
            raise missing
    elif ":" in name:
        node, port = name.rsplit(":", 1)
    else:
        raise missing
    if not node or not port:
        raise missing
    check_name(node)
    return MemberName(node, parse_port(port, name))


def normalize_destination(dest: object, partition: str) -> tuple[str, str]:
    """Virtual destination -> (``/P/addr:port``, ``/P/addr``) with ``any`` as ``0``."""
    if not isinstance(dest, str) or not dest:
        raise bad_value("destination", dest)
    text = dest.strip()
    folder = partition
    if text.startswith("/"):
        folder, _, text = text[1:].rpartition("/")
        folder = folder or partition
    try:
        member = parse_member(text)
    except IcrError:
        raise bad_value("destination", dest) from None
    if not is_ip(member.node):
        raise bad_value("destination", dest)
    return f"/{folder}/{member.name}", f"/{folder}/{member.node}"


def monitor_refs(expr: str) -> tuple[str, list[str], int | None]:
    """Parse a pool monitor rule into (operator, names, min).

    Forms: ``a``, ``a and b``, ``min N of { a b }`` and the brace-less
    ``min N of a b`` (f5-sdk strips braces, ID645289).  ``none`` -> no names.
    """
    text = " ".join(expr.replace("{", " ").replace("}", " ").split())
    if text in ("", "none"):
        return "none", [], None
    m = re.match(r"^min (\d+) of (.+)$", text)
    if m:
        names = m.group(2).split(" ")
        return "min", names, int(m.group(1))
    names = [n for n in text.split(" and ")]
    if any(not n or " " in n for n in names):
        raise bad_value("monitor", expr)
    return "and", names, None


def monitor_rule(op: str, paths: list[str], minimum: int | None) -> str | None:
    """The rule as a device prints it (trailing space included, §7.1)."""
    if op == "none" or not paths:
        return None
    if op == "min":
        return f"min {minimum} of {{ {' '.join(paths)} }}"
    return " and ".join(paths) + " "
