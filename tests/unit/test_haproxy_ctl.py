"""Parsers of lbctl.targets.haproxy_ctl on text captured from HAProxy 2.6.12 (Debian 12)."""

from __future__ import annotations

import pytest

from lbctl.errors import CommandError, ReloadError
from lbctl.targets.haproxy import ctl as hc

HEADER = "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"

SHOW_PROC_STARTED = HEADER + (
    "4587            master          0 [failed: 0]   0d00h00m01s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "4590            worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
    "# programs\n\n"
)

# After a reload whose new config could not bind: reloads went up, failed: 1, old worker kept.
SHOW_PROC_FAILED = HEADER + (
    "4587            master          2 [failed: 1]   0d00h00m08s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "4655            worker          1               0d00h00m07s     2.6.12-1+deb12u4\n"
    "# programs\n\n"
)

# A reload with a request in flight: the previous worker lingers as an old worker.
SHOW_PROC_OLD_WORKERS = HEADER + (
    "4587            master          4 [failed: 0]   0d00h00m13s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "4851            worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
    "# old workers\n"
    "4770            worker          1               0d00h00m05s     2.6.12-1+deb12u4\n"
    "# programs\n\n"
)

SERVERS_STATE = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 app 1 web1 127.0.0.1 2 0 7 7 0 1 0 2 0 0 0 0 - 18081 - 0 0 - - 0\n"
    "3 app 2 web2 127.0.0.1 2 8 1 1 0 1 0 2 0 0 0 0 - 18082 - 0 0 - - 0\n"
    "3 app 3 slot1 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 18083 - 0 0 - - 0\n"
    "3 app 4 slot2 127.0.0.1 0 5 1 1 0 1 0 0 8 0 0 0 - 9 - 0 0 - - 0\n"
    "4 other 1 o1 192.0.2.10 0 1 1 1 0 1 0 0 0 0 0 0 - 8080 - 0 0 - - 0\n\n"
)

MASTER_LOG = """\
[NOTICE]   (4587) : New worker (4590) forked
[NOTICE]   (4587) : Loading success.
[NOTICE]   (4587) : Reloading HAProxy
[WARNING]  (4655) : Paused frontend fe.
[ALERT]    (4587) : Binding [h.cfg:10] for frontend fe: cannot bind socket (Address already in use) for [127.0.0.1:28090]
[ALERT]    (4587) : [haproxy.main()] Some protocols failed to start their listeners! Exiting.
[WARNING]  (4587) : Loading failure!
[WARNING]  (4655) : Resumed frontend fe.
"""


def test_show_proc_after_start():
    info = hc.parse_show_proc(SHOW_PROC_STARTED)
    assert (info.master_pid, info.reloads, info.failed) == (4587, 0, 0)
    assert info.worker_pids == (4590,)
    assert info.workers[0] == hc.Proc(4590, "worker", 0, "0d00h00m01s", "2.6.12-1+deb12u4")
    assert info.old_workers == ()


def test_show_proc_after_failed_reload():
    info = hc.parse_show_proc(SHOW_PROC_FAILED)
    assert (info.reloads, info.failed, info.worker_pids) == (2, 1, (4655,))
    assert info.workers[0].reloads == 1


def test_show_proc_with_old_workers():
    info = hc.parse_show_proc(SHOW_PROC_OLD_WORKERS)
    assert (info.reloads, info.failed, info.worker_pids) == (4, 0, (4851,))
    assert [(w.pid, w.reloads) for w in info.old_workers] == [(4770, 1)]


def test_show_proc_without_failed_field():
    info = hc.parse_show_proc(SHOW_PROC_STARTED.replace(" [failed: 0]", ""))
    assert (info.master_pid, info.failed, info.worker_pids) == (4587, 0, (4590,))


@pytest.mark.parametrize("text", ["", "Unknown command.\n", "1\n# be_id be_name\n"])
def test_show_proc_garbage(text):
    with pytest.raises(CommandError, match="unexpected 'show proc' answer"):
        hc.parse_show_proc(text)


def test_servers_state():
    rows = hc.parse_servers_state(SERVERS_STATE)
    assert [(r.backend, r.name, r.addr, r.port) for r in rows] == [
        ("app", "web1", "127.0.0.1", 18081), ("app", "web2", "127.0.0.1", 18082),
        ("app", "slot1", "127.0.0.1", 18083), ("app", "slot2", "127.0.0.1", 9),
        ("other", "o1", "192.0.2.10", 8080)]
    web1, web2, slot1, slot2, o1 = rows
    assert (web1.uweight, web1.iweight, web1.up, web1.maint, web1.drain) == (7, 7, True, False, False)
    assert (web2.admin_state, web2.up, web2.drain) == (8, True, True)  # state drain
    assert (slot1.admin_state, slot1.up, slot1.maint) == (4, True, False)  # template slot, state ready
    assert (slot2.admin_state, slot2.up, slot2.maint) == (5, False, True)  # still 'disabled'
    assert (o1.admin_state, o1.maint) == (1, True)  # state maint
    assert o1.fields["srv_id"] == "1" and o1.fields["srv_fqdn"] == "-"


@pytest.mark.parametrize("text", ["Can't find backend.\n\n", "", "2\n# be_id\n"])
def test_servers_state_refuses_non_state_answers(text):
    with pytest.raises(CommandError, match="unexpected 'show servers state' answer"):
        hc.parse_servers_state(text)


def test_servers_state_short_row():
    with pytest.raises(CommandError, match="row"):
        hc.parse_servers_state(SERVERS_STATE.replace(" 18081 - 0 0 - - 0", ""))


def test_alert_lines_after_offset(tmp_path):
    log = tmp_path / "haproxy.log"
    log.write_text(MASTER_LOG)
    assert hc.alert_lines(log) == [
        "Binding [h.cfg:10] for frontend fe: cannot bind socket (Address already in use) for [127.0.0.1:28090]",
        "[haproxy.main()] Some protocols failed to start their listeners! Exiting.",
        "Loading failure!",
    ]
    assert hc.alert_lines(log, offset=len(MASTER_LOG)) == []
    assert hc.alert_lines(log, offset=10**9)[0].startswith("Binding")  # log shrank: read it all
    assert hc.alert_lines(tmp_path / "missing.log") == []


def test_socket_command_refuses_multi_line():
    with pytest.raises(CommandError, match="one line"):
        hc.socket_command("/nonexistent.sock", "show proc\nreload")


def test_socket_command_missing_socket(tmp_path):
    with pytest.raises(CommandError, match=r"haproxy socket .*missing.sock: 'show proc' failed: No such file"):
        hc.socket_command(tmp_path / "missing.sock", "show proc", timeout=1)


class FakeMaster:
    """A master CLI on a UNIX socket that answers each connection with the next scripted text.

    Like HAProxy 2.6 it answers only after the client half-closes.
    """

    def __init__(self, path, answers, on_reload=None):
        import socket
        import threading
        self.answers = list(answers)
        self.commands = []
        self.on_reload = on_reload
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                self.commands.append(data.decode().strip())
                if self.commands[-1] == "reload" and self.on_reload:
                    self.on_reload()
                answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
                conn.sendall(answer.encode())

    def close(self):
        self.sock.close()


@pytest.fixture
def fake_master(tmp_path):
    masters = []

    def start(*answers, on_reload=None):
        masters.append(FakeMaster(tmp_path / "master.sock", answers, on_reload))
        return masters[-1]
    yield start
    for m in masters:
        m.close()


def test_reload_succeeds_once_a_new_worker_shows(tmp_path, fake_master):
    reloading = SHOW_PROC_STARTED.replace("master          0", "master          1")  # worker not new yet
    done = SHOW_PROC_STARTED.replace("master          0", "master          1").replace("4590  ", "4700  ")
    m = fake_master(SHOW_PROC_STARTED, "", SHOW_PROC_STARTED, reloading, done)
    info = hc.MasterCLI(tmp_path / "master.sock").reload(timeout=5)
    assert (info.reloads, info.worker_pids) == (1, (4700,))
    assert m.commands == ["show proc", "reload", "show proc", "show proc", "show proc"]


def test_reload_failure_quotes_the_master_log(tmp_path, fake_master):
    log = tmp_path / "haproxy.log"
    log.write_text("[ALERT]    (1) : an alert from before the reload\n")

    def log_failure():
        with log.open("a") as f:
            f.write(MASTER_LOG)
    fake_master(SHOW_PROC_STARTED, "", SHOW_PROC_FAILED.replace("4655", "4590"), on_reload=log_failure)
    with pytest.raises(ReloadError) as info:
        hc.MasterCLI(tmp_path / "master.sock", log_path=log).reload(timeout=5)
    assert str(info.value) == (
        "haproxy reload failed (failed: 1, still serving: worker 4590): Binding [h.cfg:10] for frontend fe: "
        "cannot bind socket (Address already in use) for [127.0.0.1:28090]")


def test_reload_not_confirmed_before_the_deadline(tmp_path, fake_master):
    fake_master(SHOW_PROC_STARTED)  # reloads never goes up
    with pytest.raises(ReloadError, match=r"haproxy reload not confirmed within 0.3s \(reloads still 0\)"):
        hc.MasterCLI(tmp_path / "master.sock").reload(timeout=0.3)
