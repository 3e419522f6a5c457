"""The demo's backends (``python -m lbctl_testkit.emulators.consul --demo``) print no
traceback when a health check resets its connection, and still print any other error."""

from lbctl_testkit.emulators.consul.__main__ import _Backend, _Hello


def error_output(capsys, exc: BaseException) -> str:
    server = _Backend(("127.0.0.1", 0), _Hello)
    try:
        try:
            raise exc
        except type(exc):
            server.handle_error(None, ("127.0.0.1", 40000))
    finally:
        server.server_close()
    return capsys.readouterr().err


def test_a_reset_or_a_broken_pipe_prints_nothing(capsys):
    assert error_output(capsys, ConnectionResetError(104, "Connection reset by peer")) == ""
    assert error_output(capsys, BrokenPipeError(32, "Broken pipe")) == ""


def test_any_other_error_still_prints_its_traceback(capsys):
    out = error_output(capsys, ValueError("not a reset"))
    assert "Traceback" in out and "ValueError: not a reset" in out
