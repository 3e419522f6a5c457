"""Runtime drift: ``show servers state`` against the server lines of the file (pure)."""

from lbctl.targets.haproxy import cfg as haproxy_cfg
from lbctl.targets.haproxy import server_drift
from lbctl.targets.haproxy.cfg import ServerChange
from lbctl.targets.haproxy.ctl import parse_servers_state

HEADER = ("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
          "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n")
CONFIG = """\
backend app
    balance roundrobin
    server app-a 10.0.0.1:80 weight 20
    server app-b 10.0.0.2:80 weight 20
    server app-c 10.0.0.3:80 weight 1 disabled
    server app-d db.internal:5432 weight 5
"""


def row(name: str, addr: str, port: int, weight: int, admin: int = 0, backend: str = "app") -> str:
    return f"3 {backend} 1 {name} {addr} 2 {admin} {weight} {weight} 5 6 3 4 6 0 0 0 - {port} -\n"


def same() -> list[str]:
    return [row("app-a", "10.0.0.1", 80, 20), row("app-b", "10.0.0.2", 80, 20), row("app-c", "10.0.0.3", 80, 1, 0x05),
            row("app-d", "192.0.2.9", 5432, 5)]


def compare(rows: list[str]) -> list[server_drift.Difference]:
    return server_drift.compare(haproxy_cfg.servers(CONFIG), parse_servers_state(HEADER + "".join(rows)))


def test_what_runs_as_the_file_says_is_no_drift():
    assert compare(same()) == []  # app-c is maint by its config; app-d's name is resolved by haproxy


def test_weight_admin_state_and_address_differences_are_named():
    rows = same()
    rows[0] = row("app-a", "10.0.0.1", 80, 10)
    rows[1] = row("app-b", "10.0.0.9", 8080, 20, 0x08)  # forced drain, moved
    rows[2] = row("app-c", "10.0.0.3", 80, 1, 0x04)  # config 'disabled', but set ready by hand
    found = compare(rows)
    assert [(d.backend, d.server, d.what) for d in found] == [
        ("app", "app-a", "weight 10 (file 20)"),
        ("app", "app-b", "drain (file enabled), address 10.0.0.9:8080 (file 10.0.0.2:80)"),
        ("app", "app-c", "enabled (file maint)"),
    ]


def test_a_maint_server_of_the_file_is_compared_by_its_state_only():
    rows = same()
    rows[2] = row("app-c", "127.0.0.1", 9, 7, 0x01)
    assert compare(rows) == []


def test_servers_in_one_and_not_the_other():
    rows = same()[1:] + [row("extra", "10.0.0.5", 81, 1), row("x", "10.0.0.6", 82, 1, backend="other"),
                         row("deleted", "10.0.0.7", 80, 1, 0x01)]  # del server refused: in maint, no traffic
    found = compare(rows)
    assert [(d.backend, d.server, d.what) for d in found] == [
        ("app", "app-a", "is in the file but not running"),
        ("app", "extra", "runs (10.0.0.5:81) but is not in the file"),
        ("other", "x", "runs (10.0.0.6:82) but is not in the file"),
    ]


def test_the_report_names_each_server_up_to_a_few_then_counts():
    rows = [row(f"s{i}", "10.0.1.1", 80, 1) for i in range(8)]
    lines = server_drift.report("haproxy", "/etc/haproxy/haproxy.cfg", compare(same() + rows))
    assert lines[0] == "running haproxy differs from /etc/haproxy/haproxy.cfg: app/s0 runs (10.0.1.1:80) but is not in the file"
    assert len(lines) == server_drift.SHOWN + 1
    assert lines[-1] == "running haproxy differs from /etc/haproxy/haproxy.cfg in 3 more servers"


def test_member_only_differences_are_repaired_through_the_runtime_api():
    rows = same()
    rows[0] = row("app-a", "10.0.0.1", 80, 10, 0x01)
    rows[1] = row("app-b", "10.0.0.9", 80, 20)
    rows[2] = row("app-c", "10.0.0.3", 80, 1, 0x04)
    changes = server_drift.repairs(compare(rows + [row("extra", "10.0.0.5", 81, 3)]), dynamic=True)
    assert changes == [
        ServerChange("app", "app-a", "10.0.0.1", 80, 20, "ready", False),
        ServerChange("app", "app-b", "10.0.0.2", 80, 20, "ready", True),
        ServerChange("app", "app-c", "10.0.0.3", 80, 1, "maint", False),
        ServerChange("app", "extra", "10.0.0.5", 81, 3, "maint", False, "del"),
    ]
    assert [cmd for c in changes[:2] for cmd in haproxy_cfg.commands(c)] == [
        "set server app/app-a weight 20", "set server app/app-a state ready",
        "set server app/app-b addr 10.0.0.2 port 80", "set server app/app-b weight 20", "set server app/app-b state ready",
    ]


def test_a_missing_server_or_an_extra_slot_needs_a_reload():
    assert server_drift.repairs(compare(same()[1:]), dynamic=True) is None
    assert server_drift.repairs(compare(same() + [row("slot9", "127.0.0.1", 9, 1)]), dynamic=False) is None
