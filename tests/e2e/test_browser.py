"""End-to-end tests in Debian's Chromium against `streamlit run app.py`."""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from core.datasets import demo_dataset
from tests.e2e.helpers import (assert_no_exception, click_chart, largest_chart,
                               open_page_from_sidebar,
                               query_param, wait_for_app)

pytestmark = pytest.mark.e2e

# the default page (Overview) lives at the root URL
PAGES = {"": "Overview", "importance": "Head importance",
         "strength": "Attention strength", "patterns": "Attention patterns",
         "rollout": "Attention rollout"}


def test_a_fresh_servers_first_session_opens_a_shared_link(first_visit):
    assert not first_visit["not_found"]
    assert "Attention patterns" in first_visit["heading"]


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


def test_clicking_an_image_in_the_overview_map_selects_it_for_importance(page, app_url):
    page.goto(app_url)
    wait_for_app(page)
    compute = page.get_by_role("button", name="Compute head importance")
    if compute.count():
        compute.first.click()
    expect(page.get_by_text("All images by head importance")).to_be_visible()
    page.wait_for_function("() => document.querySelectorAll("
                           "'[data-testid=\"stVegaLiteChart\"]').length >= 2", timeout=300_000)
    wait_for_app(page, timeout_ms=300_000)
    before = query_param(page, "image")
    chart = largest_chart(page)
    for fx, fy in ((0.3, 0.35), (0.7, 0.65), (0.5, 0.2)):  # nearest point to each click
        click_chart(page, chart, fx, fy)
        try:
            page.wait_for_function(f"() => !window.location.search.includes('image={before}')",
                                   timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    wait_for_app(page)
    chosen = query_param(page, "image")
    assert chosen and chosen != before
    open_page_from_sidebar(page, "Importance")
    expect(page.locator("h1").first).to_contain_text("Head importance")
    expect(page.get_by_text(f"Image {chosen}", exact=False).first).to_be_visible()
    assert query_param(page, "image") == chosen
    assert_no_exception(page)


def test_clicking_a_head_in_the_strength_scatter_selects_it_for_patterns(page, app_url):
    page.goto(f"{app_url}/strength?layer=0&head=0")
    wait_for_app(page, timeout_ms=300_000)
    scatter = page.locator('[data-testid="stVegaLiteChart"]').nth(1)  # after the top-5 bars
    click_chart(page, scatter, 0.6, 0.2)  # a head of layer 3 or 4
    # the URL leaves out default values (layer 0, head 0): a new head adds one of them
    page.wait_for_function("() => /[?&](layer|head)=/.test(window.location.search)",
                           timeout=30_000)
    wait_for_app(page)
    layer, head = query_param(page, "layer") or "0", query_param(page, "head") or "0"
    assert (layer, head) != ("0", "0")
    expect(page.get_by_text(f"Layer {layer}, head {head}: strength by hop")).to_be_visible()
    open_page_from_sidebar(page, "Patterns")
    expect(page.get_by_text(f"Head detail: layer {layer}, head {head}")).to_be_visible(
        timeout=120_000)
    assert (query_param(page, "layer"), query_param(page, "head")) == (layer, head)
    assert_no_exception(page)


def test_clicking_a_head_in_the_pattern_layout_selects_it_everywhere(page, app_url):
    page.goto(f"{app_url}/patterns")
    wait_for_app(page)
    compute = page.get_by_role("button", name="Compute the pattern layouts")
    if compute.count():
        compute.first.click()  # the autoencoder and two t-SNE layouts of 24,000 heads
    page.get_by_text("Layout of").wait_for(timeout=600_000)
    wait_for_app(page, timeout_ms=600_000)
    chart = largest_chart(page)
    for fx, fy in ((0.2, 0.3), (0.7, 0.7), (0.4, 0.8), (0.8, 0.2)):
        click_chart(page, chart, fx, fy)  # the nearest of the image's 24 heads
        try:
            page.wait_for_function("() => /[?&](layer|head)=/.test(window.location.search)",
                                   timeout=15_000)
            break
        except PlaywrightTimeout:
            continue
    wait_for_app(page)
    layer, head = query_param(page, "layer") or "0", query_param(page, "head") or "0"
    assert (layer, head) != ("0", "0")
    expect(page.get_by_text(f"Head detail: layer {layer}, head {head}")).to_be_visible()
    open_page_from_sidebar(page, "Strength")
    expect(page.get_by_text(f"Layer {layer}, head {head}: strength by hop")).to_be_visible()
    assert_no_exception(page)


def test_uploaded_images_become_the_image_set_and_a_link_reopens_it(page, app_url):
    import io

    import numpy as np
    from PIL import Image

    def png(value: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.full((40, 40, 3), value, dtype=np.uint8)).save(out, format="PNG")
        return out.getvalue()

    page.goto(app_url)
    wait_for_app(page)
    page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files([
        {"name": "dark.png", "mimeType": "image/png", "buffer": png(30)},
        {"name": "light.png", "mimeType": "image/png", "buffer": png(220)},
        {"name": "labels.csv", "mimeType": "text/csv", "buffer": b"dark.png,Bag\n"}])
    page.wait_for_function("() => window.location.search.includes('images=upload')",
                           timeout=60_000)
    wait_for_app(page)
    expect(page.get_by_text("2 images.", exact=False)).to_be_visible()
    expect(page.get_by_text("Image dark.png", exact=False).first).to_be_visible()
    query = page.url.split("?", 1)[1]
    assert_no_exception(page)
    other = page.context.new_page()  # a new session following a shared link
    other.goto(f"{app_url}/strength?{query}")
    wait_for_app(other)
    expect(other.get_by_text("2 images.", exact=False)).to_be_visible()
    assert_no_exception(other)
