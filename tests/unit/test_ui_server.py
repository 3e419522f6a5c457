"""The operator page's HTTP side (lbctl.ui.server, and beside /metrics in lbctl watch):
security headers, read-only methods, auth (token, basic) and where it is required,
secrets masked, and ``ui.auth`` in lbctl.yml."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json

import pytest

from lbctl import config, model, redact
from lbctl.errors import ConfigError
from lbctl.ui import live, server
from lbctl.watch import daemon
from lbctl.watch.metrics import Metrics, StatusServer

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def state() -> live.State:
    pools = tuple(model.Pool(f"p{i:03d}", (model.Member(f"p{i:03d}-a", "10.0.0.1", 80),)) for i in range(150))
    return live.State(model.Desired((), pools))


@contextlib.contextmanager
def serving(auth: server.Auth | None = None, make=None):
    page = server.Page(live.Reader(make or state), auth)
    httpd = server.Server(("127.0.0.1", 0), page)
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def call(port: int, path: str, method: str = "GET", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


def test_every_answer_has_the_security_headers():
    with serving() as port:
        for path, kind in (("/", "text/html"), ("/?fragment=1", "text/html"), ("/api/v1/status", "application/json"),
                           ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css"), ("/nope", "text/plain"),
                           ("/?page=x", "text/plain")):
            status, headers, body = call(port, path)
            assert status == {"/nope": 404, "/?page=x": 400}.get(path, 200), path
            assert headers["content-type"].startswith(kind), path
            assert headers["content-security-policy"] == CSP, path
            assert (headers["x-content-type-options"], headers["referrer-policy"], headers["cache-control"]) == (
                "nosniff", "no-referrer", "no-store"), path


def test_the_api_filters_and_paginates():
    with serving() as port:
        status, _, body = call(port, "/api/v1/status?page=2")
        data = json.loads(body)
        assert (data["schema"], data["page"], data["pages"], len(data["pools"]["items"])) == (1, 2, 2, 50)
        data = json.loads(call(port, "/api/v1/status?q=p007-A")[2])
        assert [p["name"] for p in data["pools"]["items"]] == ["p007"]
        html = call(port, "/?q=p149")[2].decode()
        assert 'data-pool="p149"' in html and 'data-pool="p148"' not in html


def test_read_only_head_and_405():
    with serving() as port:
        status, headers, body = call(port, "/", "HEAD")
        assert (status, body) == (200, b"") and int(headers["content-length"]) > 1000
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            status, headers, _ = call(port, "/api/v1/status", method)
            assert (status, headers["allow"]) == (405, "GET, HEAD"), method
            assert headers["content-security-policy"] == CSP


def test_a_bearer_token_is_required_when_configured():
    with serving(server.Auth(None, "tok-3141-secret")) as port:
        status, headers, _ = call(port, "/")
        assert (status, headers["www-authenticate"]) == (401, 'Bearer realm="lbctl"')
        assert call(port, "/ui/app.js", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(port, "/api/v1/status", headers={"Authorization": "Basic dG9rLTMxNDEtc2VjcmV0"})[0] == 401
        assert call(port, "/api/v1/status", headers={"Authorization": "Bearer tok-3141-secret"})[0] == 200


def test_basic_auth_is_required_when_configured():
    def basic(user: str, password: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    with serving(server.Auth("ops", "pw-2718")) as port:
        status, headers, _ = call(port, "/")
        assert status == 401 and headers["www-authenticate"].startswith('Basic realm="lbctl"')
        assert call(port, "/", headers=basic("ops", "nope"))[0] == 401
        assert call(port, "/", headers=basic("root", "pw-2718"))[0] == 401
        assert call(port, "/", headers={"Authorization": "Basic !!!"})[0] == 401
        assert call(port, "/", headers=basic("ops", "pw-2718"))[0] == 200


def test_off_loopback_the_page_needs_auth():
    for host in ("127.0.0.1", "127.3.0.1", "::1", "localhost"):
        assert server.auth_for((host, 9106), None) is None
    for host in ("0.0.0.0", "10.1.2.3", "::", "lb.example"):
        with pytest.raises(ConfigError, match=r"^refusing to serve the operator page on .*:9106 without ui\.auth"):
            server.auth_for((host, 9106), None)


def test_lbctl_watch_turns_the_page_off_but_keeps_metrics_off_loopback():
    page = daemon.operator_page(None, ("0.0.0.0", 9105), None)
    assert "needs ui.auth" in page.off
    metrics = Metrics()
    httpd = StatusServer(("127.0.0.1", 0), metrics, lambda: True, lambda: (True, "ready"), page)
    try:
        port = httpd.server_address[1]
        status, headers, body = call(port, "/api/v1/status")
        assert status == 403 and b"needs ui.auth" in body and headers["content-security-policy"] == CSP
        assert call(port, "/metrics")[0] == 200 and call(port, "/readyz")[0] == 200
        assert call(port, "/metrics", "POST")[0] == 405
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_metrics_stay_open_when_the_page_needs_a_token():
    page = server.Page(live.Reader(state), server.Auth(None, "tok-page-only"))
    httpd = StatusServer(("127.0.0.1", 0), Metrics(), lambda: True, lambda: (True, "ready"), page)
    try:
        port = httpd.server_address[1]
        assert call(port, "/")[0] == 401
        assert call(port, "/metrics")[0] == 200 and call(port, "/healthz")[0] == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_no_secret_reaches_the_page():
    redact.remember("hunter2-ui-secret")
    pool = model.Pool("app", (model.Member("a", "10.0.0.1", 80, meta=(("token", "hunter2-ui-secret"),)),))
    refusals = {"edge": "consul token hunter2-ui-secret denied"}
    with serving(make=lambda: live.State(model.Desired((), (pool,)), refusals=refusals)) as port:
        for path in ("/", "/api/v1/status"):
            body = call(port, path)[2].decode()
            assert "hunter2-ui-secret" not in body and "***" in body


def test_ui_auth_in_lbctl_yml(tmp_path, monkeypatch):
    (tmp_path / "tok").write_text("file-token-1\n")
    auth = config.from_raw({"ui": {"auth": {"token_file": "tok"}}}, tmp_path).ui_auth
    assert (auth.user, auth.secret()) == (None, "file-token-1")
    monkeypatch.setenv("UI_PW", "env-pw-1")
    auth = config.from_raw({"ui": {"auth": {"user": "ops", "password_env": "UI_PW"}}}, tmp_path).ui_auth
    assert (auth.user, auth.secret()) == ("ops", "env-pw-1")
    assert config.from_raw({}, tmp_path).ui_auth is None
    for raw, message in (({"auth": {"password_env": "UI_PW"}}, "a password needs a user"),
                         ({"auth": {"user": "ops", "token_env": "X", "password_env": "UI_PW"}}, "not both"),
                         ({"auth": {"user": "ops"}}, "needs exactly one of password_env"),
                         ({"auth": {"tokn_env": "X"}}, "tokn_env"),
                         ({"listen": "x"}, "listen")):
        with pytest.raises(ConfigError, match=message):
            config.from_raw({"ui": raw}, tmp_path)
    with pytest.raises(ConfigError, match=r"^ui\.auth\.token_env: the environment variable NOPE_UI is not set$"):
        config.from_raw({"ui": {"auth": {"token_env": "NOPE_UI"}}}, tmp_path).ui_auth.secret()
