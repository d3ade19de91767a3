"""Smoke test of every page with Streamlit's AppTest: no exception, the demo
image shown with its predictions and the attention overlay."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.datasets import demo_dataset

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["pages/overview_page.py", "pages/importance_page.py", "pages/strength_page.py",
         "pages/patterns_page.py", "pages/rollout_page.py"]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIT_EXPLORER_DEVICE", "cpu")


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_the_demo_image(page):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(c.startswith("Image test-") and "true label" in c for c in captions), captions
    assert any("layer 0, head 0" in c for c in captions), captions
    assert at.title[0].value  # the page's own title


def test_sidebar_selection_reaches_the_page_and_the_url():
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.slider(key="w_layer").set_value(3).run()  # layer
    at.slider(key="w_head").set_value(2).run()  # head
    at.selectbox(key="w_image").select_index(5).run()
    captions = [c for img in at.get("image") for c in img.captions]
    assert any("layer 3, head 2" in c for c in captions), captions
    assert at.query_params["layer"] == "3" and at.query_params["head"] == "2"
    assert at.query_params["image"] == at.selectbox(key="w_image").value


def test_a_shared_link_opens_the_same_selection():
    image_id = demo_dataset().records[50].id
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"image": image_id, "layer": "4", "head": "1"})
    at.run()
    assert not at.exception
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(image_id in c for c in captions), captions
    assert any("layer 4, head 1" in c for c in captions), captions


def test_a_bad_model_gives_a_message_not_a_crash():
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"model": "resnet18", "checkpoint": "/no/such.pth"})
    at.run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)
