"""The operator page's HTML escapes everything: discovery data (names, tags, meta, check
output), audit entries and target reports are untrusted, and hostile values end up only
as text or quoted attribute values."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

from lbctl import model
from lbctl.discovery.routes import Refusal
from lbctl.ui import page, view

HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "'><svg onload=alert(3)>", "{{ 7*7 }}",
           "</textarea><script>alert(4)</script>", "javascript:alert(5)", "</main><main id=content>"]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def hostile_known() -> view.Known:
    bad = " ".join(HOSTILE)
    members = tuple(model.Member(f"m{i}{h}", h, 80, tags=(h,), meta=(("k", h),)) for i, h in enumerate(HOSTILE))
    pool = model.Pool(f"pool{HOSTILE[1]}", members)
    lst = model.Listener(f"web{HOSTILE[1]}", 80, routes=(model.Route(pool.name, host=HOSTILE[0], path=HOSTILE[5],
                                                                     service=HOSTILE[2]),))
    live = {HOSTILE[0]: {pool.name: {members[0].name: {"live": "down", "check": bad, "sessions": 1}}}}
    target = {"target": HOSTILE[0], "kind": HOSTILE[1], "sha256": bad, "drift": HOSTILE, "config": bad,
              "last_apply": {"time": bad, "result": bad, "message": bad, "changed": HOSTILE},
              "vrrp": {HOSTILE[0]: bad}, "process": {"summary": bad}}
    audit = ({"time": bad, "target": bad, "action": bad, "result": HOSTILE[1], "message": bad, "changed": HOSTILE,
              "duration_s": 0.5},)
    return view.Known(model.Desired((lst,), (pool,)), targets=(target,), live=live, audit=audit,
                      refused_routes=(Refusal(bad, bad, bad, bad, bad),), refusals={HOSTILE[0]: bad},
                      source=bad, role=bad)


def rendered(q: str = "") -> str:
    return page.html(view.status(hostile_known(), time.time(), q), 5)


def test_hostile_values_appear_only_escaped():
    html = rendered(q=HOSTILE[1])
    for h in HOSTILE:
        if any(c in h for c in "<>\"'"):
            assert h not in html, h
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in html  # data is never a template


def test_the_markup_holds_only_the_pages_own_elements_and_attributes():
    parser = Tags()
    parser.feed(rendered(q=HOSTILE[2]))
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{"src": "/ui/app.js", "defer": None}]
    assert not [t for t, _ in parser.tags if t in ("img", "iframe", "textarea", "object", "embed")]
    assert not [(t, a) for t, attrs in parser.tags for a in attrs if a.startswith("on")]
    assert [attrs for tag, attrs in parser.tags if tag == "main"] == [{"id": "content"}]
    hrefs = [attrs["href"] for tag, attrs in parser.tags if tag == "a"]
    assert all(h.startswith("/?") for h in hrefs)  # pagination only: never a URL from the data
    member = next(attrs for tag, attrs in parser.tags if tag == "tr" and attrs.get("data-member") == "m0" + HOSTILE[0])
    assert member["data-pool"] == "pool" + HOSTILE[1] and member["data-live"] == "down"


def test_every_attribute_value_is_quoted():
    html = rendered()
    tags = re.findall(r"<[a-zA-Z][^<>]*>", html)
    assert len(tags) > 50
    for tag in tags:  # every attribute is a bare name or name="value" with no quote inside
        assert re.fullmatch(r'<[a-zA-Z][\w-]*(\s+[\w:-]+(="[^"<>]*")?)*\s*/?>', tag), tag


def test_the_fragment_is_what_goes_inside_main():
    status = view.status(hostile_known(), time.time())
    fragment = page.html(status, 5, fragment=True)
    assert "<main" not in fragment and "<html" not in fragment and 'id="latency-chart"' in fragment
    assert fragment.strip() in page.html(status, 5)


def test_the_page_has_the_contracts_hooks():
    pool = model.Pool("app", (model.Member("a", "10.0.0.1", 80, weight=3, state="drain"),))
    lst = model.Listener("web", 80, routes=(model.Route("app", host="a.example", path="/p"),))
    status = view.status(view.Known(model.Desired((lst,), (pool,)), targets=(
        {"target": "edge", "kind": "haproxy", "sha256": "ab"},)), time.time())
    parser = Tags()
    parser.feed(page.html(status, 7))
    tags = parser.tags
    assert ("body", {"data-refresh-seconds": "7"}) in tags
    assert ("form", {"id": "filter", "method": "get", "action": "/"}) in tags
    assert ("section", {"class": "target", "data-target": "edge", "data-kind": "haproxy"}) in tags
    assert ("tr", {"class": "route", "data-listener": "web", "data-host": "a.example", "data-path": "/p",
                   "data-source": "inventory"}) in tags
    assert ("section", {"class": "pool", "data-pool": "app"}) in tags
    assert ("tr", {"class": "member", "data-pool": "app", "data-member": "a", "data-want": "drain",
                   "data-live": "unknown"}) in tags
    classes = {attrs.get("class") for _, attrs in tags}
    assert {"config-hash", "drift", "last-apply", "role", "address", "weight", "want", "live", "check",
            "sessions"} <= classes
    assert ("table", {"id": "history"}) in tags and any(t == "svg" and a.get("id") == "latency-chart" for t, a in tags)
    assert any(t == "nav" and a.get("class") == "pages" for t, a in tags)


def test_the_assets_are_shipped():
    js, kind = page.asset("/ui/app.js")
    assert kind.startswith("text/javascript") and b"dataset.refreshed" in js and b"fragment" in js
    assert page.asset("/ui/app.css")[1].startswith("text/css")
    assert page.asset("/ui/../view.py") is None


def test_the_page_names_its_icon_so_the_browser_never_asks_for_favicon_ico():
    parser = Tags()
    parser.feed(rendered())
    icons = [attrs for tag, attrs in parser.tags if tag == "link" and attrs.get("rel") == "icon"]
    assert icons == [{"rel": "icon", "href": "data:,"}]  # an empty image: the CSP's img-src allows data:
