"""The demo in a real browser: headless Chromium (Debian's) driven by Playwright, against
``python -m sessionware demo`` served by uvicorn on a loopback port, with SQLite sessions.

Set SESSIONWARE_SCREENSHOT=1 to write the README's screenshot (docs/demo.png) from this run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .services import free_port, unavailable

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Demo:
    """The demo server in a process of its own; restartable on the same port and folder."""

    def __init__(self, cache: Path, store: str | None = None) -> None:
        self.cache = cache
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Demo:
        env = {**os.environ, "XDG_CACHE_HOME": str(self.cache)}
        env.pop("SESSION_SECRET", None)
        store = [] if self.store is None else ["--store", self.store]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sessionware", "demo", "--port", str(self.port), *store],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the demo did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def sign_in(page: Any, name: str) -> str:
    """Log in on the demo's home page, as a person does: the new session id."""
    page.fill("input[name=user]", name)
    page.click("#login")
    return str(page.inner_text("#sid"))


def restart_keeps(demo: Demo, page: Any, name: str, sid: str, why: str) -> None:
    """Restart the demo: ``page`` is still signed in as ``name``, with the same id."""
    demo.stop()
    demo.start()
    page.reload()
    assert page.inner_text("#user") == name, why
    assert page.inner_text("#sid") == sid


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    server = Demo(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium")
    if chromium is None:
        unavailable("Chromium is not installed; install it with: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_the_demo_in_a_real_browser(demo: Demo, browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    ann = browser.new_context(viewport={"width": 900, "height": 900}).new_page()
    ann.goto(demo.url)
    assert ann.inner_text("#visits") == "1"
    ann.reload()
    assert ann.inner_text("#visits") == "2", "the counter survives reloads"
    assert "connect.sid" not in ann.evaluate("document.cookie"), "the cookie is HttpOnly"
    assert any(cookie["name"] == "connect.sid" for cookie in ann.context.cookies())

    before = ann.inner_text("#sid")
    ann.fill("input[name=user]", "ann")
    ann.click("#login")
    assert ann.inner_text("#user") == "ann"
    assert ann.inner_text("#sid") != before, "login changes the session id"
    assert "session fixation protection" in ann.inner_text("#changed")
    assert ann.locator("#login").count() == 0 and ann.locator("#logout").count() == 1
    screenshot = tmp_path / "demo.png"
    ann.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SESSIONWARE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(screenshot, ROOT / "docs" / "demo.png")

    ann.click("#logout")
    assert "Not signed in" in ann.content()
    assert ann.inner_text("#visits") == "1", "logout ends the session"

    bob = browser.new_context().new_page()
    bob.goto(demo.url)
    bob.fill("input[name=user]", "bob")
    bob.click("#login")
    bobs_id = bob.inner_text("#sid")
    ann.goto(demo.url + "/sessions")
    row = ann.locator("tr", has_text=bobs_id[:8])
    assert "bob" in row.inner_text()
    row.locator("button").click()
    assert bobs_id[:8] not in ann.content()
    bob.reload()
    assert "Not signed in" in bob.content(), "a revoked session is gone on its next request"
    assert bob.inner_text("#sid") != bobs_id

    ann.goto(demo.url)
    signed_in_as = sign_in(ann, "ann")
    restart_keeps(demo, ann, "ann", signed_in_as, "the session did not survive a restart")

    phone = browser.new_context(user_agent="PhoneBrowser/1.0").new_page()
    phone.goto(demo.url)
    phone.fill("input[name=user]", "ann")
    phone.click("#login")
    ann.reload()
    rows = ann.locator("#devices tr.device")
    assert rows.count() == 2, "ann does not see her two browsers"
    assert "this browser" in rows.nth(0).inner_text()
    assert "PhoneBrowser/1.0" in rows.nth(1).inner_text()
    assert "127.0.0.1" in rows.nth(1).inner_text()
    assert signed_in_as not in ann.content().replace(ann.inner_text("#sid"), "", 1)
    rows.nth(1).locator("button.end").click()
    assert ann.locator("#devices tr.device").count() == 1
    phone.reload()
    assert "Not signed in" in phone.content(), "the ended device is still signed in"


def test_the_demo_on_a_cache_in_front_of_sqlite(browser: object, tmp_path: Path) -> None:
    """``sessionware demo --store cached://...``: a MemoryStore in front of SQLite. The cache
    dies with the process; the session does not."""
    from urllib.parse import quote

    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    url = f"cached://?cache=memory://&store={quote(f'sqlite:///{tmp_path}/demo.db', safe='')}"
    demo = Demo(tmp_path, store=url).start()
    try:
        ann = browser.new_context().new_page()
        ann.goto(demo.url)
        ann.reload()
        assert ann.inner_text("#visits") == "2"
        signed_in_as = sign_in(ann, "ann")
        bob = browser.new_context().new_page()
        bob.goto(demo.url)
        bobs_id = sign_in(bob, "bob")
        restart_keeps(demo, ann, "ann", signed_in_as, "the session did not survive the cache")
        bob.reload()
        assert bob.inner_text("#user") == "bob"  # now in the cache again
        ann.goto(demo.url + "/sessions")
        ann.locator("tr", has_text=bobs_id[:8]).locator("button").click()
        bob.reload()
        assert "Not signed in" in bob.content(), "a revoked session outlived it in the cache"
    finally:
        demo.stop()


def test_the_demo_on_a_cookie_store(browser: object, tmp_path: Path) -> None:
    """``sessionware demo --store cookie://``: the session lives in the sealed cookie; it
    survives a restart (the key comes from the demo's secret), and logging out ends it."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    demo = Demo(tmp_path, store="cookie://").start()
    try:
        ann = browser.new_context().new_page()
        ann.goto(demo.url)
        ann.reload()
        assert ann.inner_text("#visits") == "2"
        [cookie] = [c for c in ann.context.cookies() if c["name"] == "connect.sid"]
        assert cookie["value"].startswith("c1."), "the session is not in a sealed cookie"
        signed_in_as = sign_in(ann, "ann")
        restart_keeps(demo, ann, "ann", signed_in_as, "the sealed cookie did not open")
        ann.goto(demo.url + "/sessions")
        assert "no list to show" in ann.inner_text("#no-list")
        ann.goto(demo.url)
        ann.click("#logout")
        assert "Not signed in" in ann.content()
        assert ann.inner_text("#visits") == "1"
    finally:
        demo.stop()
