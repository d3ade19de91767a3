"""Real-browser fixtures: `streamlit run` on a free port, Debian's Chromium
driven by Playwright. Screenshots go to test-artifacts/."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory) -> str:
    port = free_port()
    env = dict(os.environ, VIT_EXPLORER_CACHE=str(tmp_path_factory.mktemp("cache")),
               VIT_EXPLORER_UPLOADS=str(tmp_path_factory.mktemp("uploads")),
               VIT_EXPLORER_DEVICE="cpu")
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start; see {log.name}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def first_visit(app_url, browser) -> dict:
    """The fresh server's very first session, opened on a shared link (/patterns), as
    a user following a link would; records whether Streamlit's "Page not found"
    dialog showed and the page's heading."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from tests.e2e.helpers import wait_for_app
    context = browser.new_context()
    first = context.new_page()
    first.goto(f"{app_url}/patterns")
    try:
        first.get_by_text("Page not found").wait_for(timeout=5_000)
        flashed = True
    except PlaywrightTimeout:
        flashed = False
    wait_for_app(first)
    ARTIFACTS.mkdir(exist_ok=True)
    first.screenshot(path=str(ARTIFACTS / "first_visit.png"), full_page=True)
    seen = {"not_found": flashed or first.get_by_text("Page not found").count() > 0,
            "heading": first.locator("h1").first.inner_text()}
    context.close()
    return seen


@pytest.fixture
def page(browser, first_visit, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
