"""End-to-end tests in Debian's Chromium against `streamlit run app.py`."""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from core.datasets import demo_dataset
from tests.e2e.helpers import assert_no_exception, wait_for_app

pytestmark = pytest.mark.e2e

# the default page (Overview) lives at the root URL
PAGES = {"": "Overview", "importance": "Head importance",
         "strength": "Attention strength", "patterns": "Attention patterns",
         "rollout": "Attention rollout"}


@pytest.mark.parametrize("path,title", list(PAGES.items()))
def test_every_page_opens(page, app_url, path, title):
    seen_not_found = []
    page.goto(f"{app_url}/{path}")
    try:  # a direct link must not flash Streamlit's "Page not found" dialog
        page.get_by_text("Page not found").wait_for(timeout=5_000)
        seen_not_found.append(True)
    except PlaywrightTimeout:
        pass
    wait_for_app(page)
    assert not seen_not_found
    expect(page.locator("h1").first).to_contain_text(title)
    assert_no_exception(page)


def test_a_shared_link_opens_the_same_view_after_reload(page, app_url):
    image_id = demo_dataset().records[123].id
    page.goto(f"{app_url}/strength?image={image_id}&layer=4&head=1")
    wait_for_app(page)
    caption = "layer 4, head 1"
    expect(page.get_by_text(caption, exact=False).first).to_be_visible()
    expect(page.get_by_text(f"Image {image_id}", exact=False).first).to_be_visible()
    assert f"image={image_id}" in page.url and "layer=4" in page.url
    page.reload()
    wait_for_app(page)
    expect(page.get_by_text(caption, exact=False).first).to_be_visible()
    expect(page.get_by_text(f"Image {image_id}", exact=False).first).to_be_visible()


def test_sidebar_change_is_written_to_the_url(page, app_url):
    page.goto(app_url)
    wait_for_app(page)
    slider = page.get_by_role("slider").nth(1)  # head
    slider.focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_text("layer 0, head 1", exact=False).first).to_be_visible(timeout=30_000)
    page.wait_for_function("() => window.location.search.includes('head=1')", timeout=30_000)
