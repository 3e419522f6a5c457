"""The operator page in a real browser: Debian's headless chromium (selenium,
chromedriver) against a running ``lbctl watch --listen`` fed by the Consul emulator,
with real HAProxy and real backends. The page's hooks are docs/dashboard.md's.

Every wait is a condition with a deadline. A failed test leaves a screenshot of
the page in the artifacts directory (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest

from lbctl_testkit.support import free_port, http_get, requires_haproxy, wait_until
from lbctl_testkit.support.browser import requires_chromium, running_chromium
from lbctl_testkit.support.world import World, running_world

pytestmark = [*requires_haproxy, *requires_chromium]

# every member row at once, read in one script (the auto refresh replaces the rows)
MEMBERS = """return Array.from(document.querySelectorAll('tr.member')).map(r => ({
    pool: r.dataset.pool, member: r.dataset.member, want: r.dataset.want, live: r.dataset.live,
    address: (r.querySelector('.address') || {}).textContent,
    check: ((r.querySelector('.check') || {}).textContent || '').trim()}))"""
POOLS = "return Array.from(document.querySelectorAll('section.pool')).map(s => s.dataset.pool)"
# what hostile text would have become had it been taken as markup
INJECTED = ("return document.querySelectorAll('#content script, #content iframe, #content img, [onerror], [onload],"
            " a[href^=javascript]').length + (typeof window.pwned === 'undefined' ? 0 : 1000)")
REFRESHED = "return Number(document.body.dataset.refreshed || 0)"
# a marker set on the window: a page reload (or a navigation) would lose it
MARK, MARKED = "window.lbctlTestMark = 1", "return window.lbctlTestMark === 1"
HOSTILE = ("<script>window.pwned=1</script>", "<img src=x onerror=window.pwned=1>",
           "<svg onload=window.pwned=1>", "<iframe src=javascript:window.top.pwned=1>")  # Meta values allow these
HOSTILE_TAGS = ["javascript:window.pwned=1", "x=1/@+,-"]  # tags are held to [\w.:=/@+,-]
# an HTTP reason phrase is free text (quotes and commas too): HAProxy's last check result carries it
HOSTILE_REASON = "\"><img src=x onerror=\"window.pwned=1\">, '><svg/onload='window.pwned=1'> </td></tr><script>window.pwned=1</script>"


@dataclass
class Dashboard:
    world: World
    url: str


@pytest.fixture
def dashboard(tmp_path):
    """``lbctl watch --listen 127.0.0.1:<port>`` with app-a registered, its page answering."""
    port = free_port()
    with running_world(tmp_path, watch_args=("--listen", f"127.0.0.1:{port}")) as world:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: http_get(url).status == 200, 15, "the page to answer", ignore=(OSError,))
        yield Dashboard(world, url)


@pytest.fixture
def browser(request):
    """A headless chromium; the page's screenshot is kept when the test fails."""
    failed = request.session.testsfailed
    with running_chromium() as b:
        yield b
        if request.session.testsfailed > failed:
            with contextlib.suppress(Exception):
                b.screenshot(f"{request.node.name}-failed")


def members(browser) -> dict[str, dict]:
    return {r["member"]: r for r in browser.js(MEMBERS)}


def member_is(browser, name: str, check: tuple[str, ...] = (), **want: str):
    """A condition: the row of ``name`` shows every attribute of ``want`` and one of ``check``
    in its check cell (HAProxy shows a check in progress as ``* L7STS`` without its result)."""
    def cond(_driver):
        row = members(browser).get(name)
        if row and all(row[k] == v for k, v in want.items()) and (not check or any(c in row["check"] for c in check)):
            return row
        return None
    return cond


def test_a_new_member_shows_up_without_reloading_the_page(dashboard, browser):
    browser.open(dashboard.url)
    browser.wait(member_is(browser, "app-a", live="up"), 15, "app-a, up")
    browser.js(MARK)
    refreshed = browser.js(REFRESHED)
    dashboard.world.register("b")
    row = browser.wait(member_is(browser, "app-b", live="up"), 10, "app-b, up, shown by the auto refresh")
    assert row["pool"] == "app" and row["address"].strip() == dashboard.world.backends["b"].address
    assert browser.js(MARKED), "the page was reloaded"
    assert browser.js(REFRESHED) > refreshed
    assert browser.errors() == []


def test_a_failing_member_shows_as_down_with_its_check_result(dashboard, browser):
    world = dashboard.world
    for name in "bc":
        world.register(name)
    browser.open(dashboard.url)
    for name in ("app-a", "app-b", "app-c"):
        browser.wait(member_is(browser, name, live="up"), 15, f"{name}, up")
    # b's backend stops: HAProxy's own health check fails
    world.backends["b"].close()
    browser.wait(member_is(browser, "app-b", ("L4CON", "Connection refused"), live="down"), 15,
                 "app-b down after HAProxy's check, with its result")
    # c's Consul check fails: lbctl takes it out (HAProxy keeps it in its slot, in maintenance)
    output = "HTTP GET http://127.0.0.1/health: 503 <b>Service Unavailable</b>"
    world.consul.set_check("service:app-c", "critical", output=output)
    # why: the Consul check's name, status and output, as text
    row = browser.wait(member_is(browser, "app-c", (f"critical: {output}",), want="maint", live="maint"), 15,
                       "app-c out after its Consul check, with the check's output")
    assert row["check"].count("consul: ") == 1
    status = json.loads(http_get(dashboard.url + "api/v1/status?q=app-c").body)
    why = next(m for p in status["pools"]["items"] for m in p["members"] if m["name"] == "app-c")["discovery_check"]
    assert why["status"] == "critical" and why["output"] == output
    assert members(browser)["app-a"]["live"] == "up"
    shot = browser.screenshot("dashboard-member-down")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert browser.errors() == []


def api_member(url: str, name: str, check: str) -> dict | None:
    """Member ``name`` in ``/api/v1/status`` once its check shows ``check``."""
    api = json.loads(http_get(f"{url}api/v1/status?q={name}").body)
    [member] = [m for p in api["pools"]["items"] for m in p["members"] if m["name"] == name]
    return member if check in member["check"] else None


@contextlib.contextmanager
def hostile_backend():
    """A backend whose every answer is ``503 <HOSTILE_REASON>``: HAProxy's check keeps the reason
    phrase as the server's last check result, which the page shows."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503, HOSTILE_REASON)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_hostile_discovery_data_is_shown_as_text_and_never_runs(dashboard, browser):
    world = dashboard.world
    with hostile_backend() as port:
        world.consul.add_service("app", service_id="app-h", address="127.0.0.1", port=port, tags=HOSTILE_TAGS,
                                 meta={f"note{i}": text for i, text in enumerate(HOSTILE)})
        query = HOSTILE_REASON.split(",")[0]  # the filter is reflected in the page: in an attribute and as text
        browser.open(dashboard.url + "?q=" + quote(query))
        browser.wait(lambda d: browser.find("#filter input[name=q]"), 10, "the filter")
        assert browser.js("return document.querySelector('#filter input[name=q]').value") == query
        assert browser.js(INJECTED) == 0 and browser.csp_violations() == []
        browser.open(dashboard.url + "?q=app-h")
        browser.js(MARK)
        # the backend's own words, as text
        browser.wait(member_is(browser, "app-h", (HOSTILE_REASON,), live="down"), 15, "app-h down with its reason")
        tags = browser.js("return document.querySelector('tr.member[data-member=\"app-h\"] .tags').textContent")
        assert all(tag in tags for tag in HOSTILE_TAGS), tags
        refreshed = browser.js(REFRESHED)
        browser.wait(lambda d: browser.js(REFRESHED) > refreshed and member_is(browser, "app-h", (HOSTILE_REASON,))(d),
                     15, "an auto refresh (a server-escaped fragment) with the reason")
        assert browser.js(INJECTED) == 0
        assert browser.js(MARKED)
        assert browser.errors() == [] and browser.csp_violations() == []
        member = wait_until(lambda: api_member(dashboard.url, "app-h", HOSTILE_REASON), 15, "app-h in the API")
        assert list(member["meta"].values()) == list(HOSTILE)
    # the Content-Security-Policy is the second wall: an inline script put into the page anyway is refused
    browser.js("const s = document.createElement('script'); s.textContent = 'window.pwned = 1';"
               " document.body.appendChild(s)")
    assert browser.js("return typeof window.pwned") == "undefined"
    browser.wait(lambda d: browser.csp_violations(), 5, "the CSP violation in the console")


@pytest.fixture
def many_pools(tmp_path):
    """The page of ``lbctl watch`` with 300 more pools (services tagged ``edge``)."""
    port = free_port()
    source = {"filter": 'ServiceTags contains "edge"'}
    with running_world(tmp_path, source=source, watch_args=("--listen", f"127.0.0.1:{port}")) as world:
        with world.consul.transaction():
            for s in range(300):
                world.consul.add_service(f"svc-{s:03}", service_id=f"svc-{s:03}-0", address="127.0.0.2",
                                         port=9000, tags=["edge"])
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: "svc-299" in http_get(url + "?q=svc-299").body, 60, "300 more pools on the page",
                   ignore=(OSError,))
        yield url


def test_filter_and_pages_at_hundreds_of_pools(many_pools, browser):
    browser.open(many_pools)
    first = browser.wait(lambda d: browser.js(POOLS), 10, "the first page of pools")
    assert len(first) == 100
    browser.find("nav.pages a[rel=next]")[0].click()
    second = browser.wait(lambda d: "page=2" in d.current_url and browser.js(POOLS), 10, "page 2")
    assert len(second) == 100 and not set(first) & set(second)
    assert browser.find("nav.pages a[rel=prev]")
    field = browser.find("#filter input[name=q]")[0]
    field.clear()
    field.send_keys("svc-12")
    field.submit()
    shown = browser.wait(lambda d: "q=svc-12" in d.current_url and browser.js(POOLS), 10, "the filtered page")
    assert sorted(shown) == [f"svc-{n}" for n in range(120, 130)]
    assert browser.errors() == []
