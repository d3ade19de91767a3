"""Waiting for Streamlit in a real browser."""
from __future__ import annotations

from playwright.sync_api import Page, expect


def wait_for_app(page: Page, timeout_ms: int = 90_000) -> None:
    """Wait until the script has finished running and the page shows an image."""
    page.wait_for_selector('[data-testid="stImage"] img', timeout=timeout_ms)
    expect(page.locator('[data-testid="stStatusWidget"]')).to_have_count(0, timeout=timeout_ms)


def assert_no_exception(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def query_param(page: Page, name: str) -> str | None:
    from urllib.parse import parse_qs, urlparse
    values = parse_qs(urlparse(page.url).query).get(name)
    return values[0] if values else None


def largest_chart(page: Page):
    """The biggest Vega-Lite chart on the page (the main analysis chart)."""
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    boxes = [(charts.nth(i).bounding_box() or {"width": 0, "height": 0}, i)
             for i in range(charts.count())]
    _, index = max(boxes, key=lambda b: b[0]["width"] * b[0]["height"])
    return charts.nth(index)


def open_page_from_sidebar(page: Page, title: str) -> None:
    """Follow the sidebar navigation link (the session and its selection stay)."""
    page.get_by_role("link", name=title, exact=True).click()
    wait_for_app(page)


def click_chart(page: Page, chart, fx: float, fy: float) -> None:
    """Click a chart at a fraction of its box; hover first, as a user does (Vega's
    nearest-point layer reacts to the pointer before the click)."""
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
    page.mouse.move(x, y)
    page.wait_for_timeout(400)
    page.mouse.click(x, y)
