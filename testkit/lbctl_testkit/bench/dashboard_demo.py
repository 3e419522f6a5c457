"""The docs' screenshot of the operator page (``bench/ui.py --screenshot PATH``): a small,
realistic set-up on 127.0.0.1 in a temp dir, always stopped at the end.

Two listeners (http with host and path routes and routes declared by services; tcp),
pools from the inventory and from Consul (the emulator, in this process), real
backends, a real HAProxy and a real ``lbctl watch --listen``. Then a few changes the
history shows: an instance registers, one's Consul check fails (with its output), and
one's backend stops, so HAProxy's own check takes it down.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from lbctl_testkit.bench.procs import HOST, binary, log, stop_group
from lbctl_testkit.emulators.consul import ConsulEmulator
from lbctl_testkit.support import Backend, free_port, http_get, running_haproxy, wait_until
from lbctl_testkit.support.browser import running_chromium

BACKENDS = ("www-1", "www-2", "shop-1", "shop-2", "api-1", "api-2", "api-3", "blog-1", "db-1")
SERVICES = {"shop": ("shop-1", "shop-2"), "api": ("api-1", "api-2"), "blog": ("blog-1",)}


def inventory(ports: dict[str, int], web: int, db: int) -> dict:
    def member(name: str) -> dict:
        return {"name": name, "address": HOST, "port": ports[name]}
    return {
        "version": 1,
        "defaults": {"listener": {"address": HOST},
                     "pool": {"health": {"type": "http", "path": "/health", "interval": "500ms", "rise": 1, "fall": 1}}},
        "listeners": {
            "public": {"port": web, "mode": "http", "default_pool": "www", "accept_routes": ["*.apps.example.com"],
                       "routes": [{"host": "shop.example.com", "pool": "shop"}, {"path": "/api/", "pool": "api"}]},
            "postgres": {"port": db, "mode": "tcp", "default_pool": "db"},
        },
        "pools": {"www": {"balance": "leastconn", "members": [member("www-1"), member("www-2")]},
                  "db": {"health": {"type": "tcp"}, "members": [member("db-1")]},
                  "shop": {"sticky_cookie": "SHOP"}, "api": {}},
    }


def settings(d: Path, consul_port: int, web: int) -> dict:
    return {
        "source": {"inventory": "inventory.yml",
                   "consul": {"address": f"{HOST}:{consul_port}", "services": sorted(SERVICES), "wait": "5s"}},
        "watch": {"min_wait": "0s", "max_wait": "1s"},
        "state_dir": "state", "audit_log": "audit.log", "guard": {"max_removal": 0.5},
        "targets": {"edge": {
            "kind": "haproxy", "config": "haproxy.cfg", "binary": binary("haproxy"),
            "master_socket": "master.sock", "master_log": "haproxy.log", "stats_socket": str(d / "stats.sock"),
            "state_file": str(d / "haproxy.state"), "hard_stop_after": "5s",
            "probes": [{"url": f"http://{HOST}:{web}/"}]}},
    }


def register(consul: ConsulEmulator, service: str, name: str, port: int, **kw) -> None:
    meta = {"lb-route": "blog.apps.example.com", "team": "content"} if service == "blog" else {"team": "shop"}
    consul.add_service(service, service_id=name, address=HOST, port=port, tags=["v2", "edge"], meta=meta, **kw)


def status(url: str) -> dict:
    return json.loads(http_get(url + "api/v1/status").body)


def member_live(url: str, name: str) -> str | None:
    for pool in status(url)["pools"]["items"]:
        for m in pool["members"]:
            if m["name"] == name:
                return m["live"]
    return None


def changes(consul: ConsulEmulator, backends: dict[str, Backend], url: str) -> None:
    """A registration, a failing Consul check, a stopped backend; each waited for on the page's API."""
    wait_until(lambda: member_live(url, "api-2") == "up", 30, "api-2 up", ignore=(OSError, ValueError))
    register(consul, "api", "api-3", backends["api-3"].port)
    wait_until(lambda: member_live(url, "api-3") == "up", 30, "api-3 up", ignore=(OSError, ValueError))
    consul.set_check("service:shop-2", "critical", output="HTTP GET http://127.0.0.1/health: 503 Service Unavailable")
    wait_until(lambda: member_live(url, "shop-2") == "maint", 30, "shop-2 out", ignore=(OSError, ValueError))
    backends["api-2"].close()
    wait_until(lambda: member_live(url, "api-2") == "down", 30, "api-2 down", ignore=(OSError, ValueError))
    wait_until(lambda: len(status(url)["history"]) >= 3, 30, "three applies in the history")


def shoot(url: str, path: Path) -> None:
    with running_chromium(size=(1280, 900), artifacts=path.parent) as browser:
        browser.open(url)
        refreshed = browser.js("return Number(document.body.dataset.refreshed || 0)")
        browser.wait(lambda d: browser.js("return Number(document.body.dataset.refreshed || 0)") > refreshed, 30,
                     "one auto refresh")
        if browser.errors():
            raise RuntimeError(f"console errors: {browser.errors()}")
        shot = browser.screenshot(path.stem, height=1800)  # the history's oldest apply (a new file) is long
        if shot != path:
            shot.replace(path)
    log(f"{path}: {path.stat().st_size // 1024} KB")


def screenshot(path: Path, keep: bool = False) -> None:
    d = Path(tempfile.mkdtemp(prefix="lbctl-demo-"))
    watch = None
    try:
        with contextlib.ExitStack() as stack:
            consul = stack.enter_context(ConsulEmulator(default_wait=5, max_wait=5, check_update_interval=0))
            backends = {n: stack.enter_context(Backend(n)) for n in BACKENDS}
            for service, names in SERVICES.items():
                for name in names:
                    register(consul, service, name, backends[name].port)
            web, db, page = free_port(), free_port(), free_port()
            (d / "inventory.yml").write_text(yaml.safe_dump(inventory({n: b.port for n, b in backends.items()},
                                                                      web, db)))
            (d / "lbctl.yml").write_text(yaml.safe_dump(settings(d, consul.port, web)))
            lbctl = [sys.executable, "-m", "lbctl"]
            subprocess.run([*lbctl, "apply", "-c", "lbctl.yml"], cwd=d, check=True, capture_output=True)
            stack.enter_context(running_haproxy(d / "haproxy.cfg", d))
            with open(d / "watch.log", "ab") as out:
                watch = subprocess.Popen([*lbctl, "watch", "-c", "lbctl.yml", "--listen", f"{HOST}:{page}"],
                                         cwd=d, stdout=out, stderr=out, start_new_session=True)
            url = f"http://{HOST}:{page}/"
            changes(consul, backends, url)
            shoot(url, path)
            stop_group(watch)
    finally:
        stop_group(watch)
        if keep:
            log(f"kept {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)
