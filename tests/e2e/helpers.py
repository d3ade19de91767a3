"""Waiting for Streamlit in a real browser."""
from __future__ import annotations

from playwright.sync_api import Page, expect


def wait_for_app(page: Page, timeout_ms: int = 90_000) -> None:
    """Wait until the script has finished running and the page shows an image."""
    page.wait_for_selector('[data-testid="stImage"] img', timeout=timeout_ms)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=timeout_ms)


def assert_no_exception(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
