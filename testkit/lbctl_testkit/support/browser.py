"""Debian's chromium, headless, driven through selenium and Debian's chromedriver
(package chromium-driver), for the operator page's end-to-end tests and bench/ui.py.

Selenium is pointed at both binaries explicitly, so Selenium Manager (which would
download a driver and a browser) never runs, and chromium is told not to reach
for the network on its own (component updates, sync, background requests). Each
browser gets a temporary profile, removed with it. The console (every level) is
kept for the tests: JavaScript errors and Content-Security-Policy violations show
up there. Screenshots go to the artifacts directory (``LBCTL_ARTIFACTS``, default
``build/artifacts/`` in the checkout, which git ignores).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from lbctl_testkit.support.procs import SKIP_PREFIX, find_binary

ROOT = Path(__file__).resolve().parents[3]
# binary → the Debian package that installs it
PACKAGES = {"chromium": "chromium", "chromedriver": "chromium-driver"}
CHROMIUM_FLAGS = (
    "--headless=new",
    # chromium refuses to start as root inside its sandbox; the tests run as root (CI
    # containers), so the sandbox goes, and only loopback pages are ever opened
    "--no-sandbox",
    "--disable-dev-shm-usage",  # /dev/shm is small in containers: shared memory in /tmp
    "--disable-gpu",
    # nothing but the pages we open: no component updates, sync, or background requests
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
    "--hide-scrollbars",
)
# what chromium logs on a Content-Security-Policy violation (report-only or enforced)
CSP_MESSAGE = re.compile(r"Content Security Policy", re.IGNORECASE)


def missing() -> str | None:
    """Why the browser tests cannot run (a binary and its Debian package), or None."""
    for binary, package in PACKAGES.items():
        if find_binary(binary) is None:
            return f"{binary} not found on PATH; install the Debian '{package}' package"
    return None


# like requires_haproxy: the skip starts with SKIP_PREFIX, a failure under LBCTL_REQUIRE_INTEGRATION=1
requires_chromium = [pytest.mark.integration,
                     pytest.mark.skipif(missing() is not None, reason=f"{SKIP_PREFIX}: {missing()}")]


def artifacts_dir() -> Path:
    """``$LBCTL_ARTIFACTS`` or ``build/artifacts`` in the checkout, created."""
    path = Path(os.environ.get("LBCTL_ARTIFACTS") or ROOT / "build" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def options(profile: Path, size: tuple[int, int]) -> webdriver.ChromeOptions:
    opts = webdriver.ChromeOptions()
    opts.binary_location = find_binary("chromium") or ""
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return opts


class Browser:
    """One headless chromium: open pages, wait on conditions, read its console, take screenshots."""

    def __init__(self, driver: webdriver.Chrome, artifacts: Path) -> None:
        self.driver = driver
        self.artifacts = artifacts
        self.log: list[dict] = []  # every console entry so far (chromedriver hands each out once)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait(self, condition: Callable[[webdriver.Chrome], Any], timeout: float, what: str) -> Any:
        """``condition(driver)`` truthy within ``timeout`` seconds, else a TimeoutException naming ``what``."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            condition, message=f"timed out after {timeout:g}s waiting for {what}")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def find(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def console(self) -> list[dict]:
        """Every console entry so far: ``{"level": "SEVERE", "source": ..., "message": ...}``."""
        self.log.extend(self.driver.get_log("browser"))
        return self.log

    def csp_violations(self) -> list[str]:
        return [e["message"] for e in self.console() if CSP_MESSAGE.search(e["message"])]

    def errors(self) -> list[str]:
        """Console errors (SEVERE) other than Content-Security-Policy violations (a failed
        request, such as a 404 for /favicon.ico, is one)."""
        return [e["message"] for e in self.console()
                if e["level"] == "SEVERE" and not CSP_MESSAGE.search(e["message"])]

    def screenshot(self, name: str, height: int | None = None) -> Path:
        """The page as ``<artifacts>/<name>.png``: its top ``height`` pixels, or all of it."""
        path = self.artifacts / f"{name}.png"
        width, full = self.js("return [document.documentElement.scrollWidth,"
                              " document.documentElement.scrollHeight]")
        self.driver.set_window_size(max(width, 800), height or min(max(full, 600), 16000))
        self.driver.save_screenshot(str(path))
        return path


@contextlib.contextmanager
def running_chromium(size: tuple[int, int] = (1280, 900), artifacts: Path | None = None) -> Iterator[Browser]:
    """A headless chromium (skips with SKIP_PREFIX if it or chromedriver is missing);
    always quit, its temporary profile removed."""
    why = missing()
    if why is not None:
        pytest.skip(f"{SKIP_PREFIX}: {why}")
    profile = Path(tempfile.mkdtemp(prefix="lbctl-chromium-"))
    service = Service(executable_path=find_binary("chromedriver"), log_output=str(profile / "chromedriver.log"))
    driver = None
    try:
        try:
            driver = webdriver.Chrome(service=service, options=options(profile / "profile", size))
        except WebDriverException as exc:
            log = (profile / "chromedriver.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chromium did not start: {exc.msg}\n{log}") from None
        yield Browser(driver, artifacts or artifacts_dir())
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
