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


def small_image_folder(root: Path, class_names: list[str], per_class: int = 4) -> Path:
    """Demo images as PNG files in three class folders (12 images)."""
    from PIL import Image
    ds = demo_dataset()
    folder = root / "imgs"
    for label in (1, 5, 7):  # Trouser, Sandal, Sneaker (names usable as folder names)
        sub = folder / class_names[label]
        sub.mkdir(parents=True)
        picks = [i for i, r in enumerate(ds.records) if r.label == label][:per_class]
        for i in picks:
            Image.fromarray(ds.pixels[i]).save(sub / f"{ds.records[i].id}.png")
    return folder


def chart_frames(chart) -> list:
    from streamlit import dataframe_util
    return [dataframe_util.convert_arrow_bytes_to_pandas_df(d.data.data)
            for d in chart.proto.datasets]


def test_importance_page_draws_the_heads_and_the_partial_pruning(demo):
    import numpy as np
    from core import importance
    from core.datasets import load_batch
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"image": demo_dataset().records[3].id, "layer": "2", "head": "1"})
    at.run()
    at.switch_page("pages/importance_page.py").run()
    assert not at.exception and not at.error
    assert any("the effect of pruning each head" in s.value for s in at.subheader)
    assert any("Partial pruning of layer 2, head 1" in s.value for s in at.subheader)
    heads = next(c for c in at.get("vega_lite_chart") if "head index" in c.proto.spec)
    values = next(f for f in chart_frames(heads) if "value" in f)["value"].to_numpy()
    ds = demo_dataset()
    x, _, _ = load_batch(demo, ds, [3])
    expected = importance.leave_one_out(demo, x, [ds.records[3].label])[0, 0].ravel()
    np.testing.assert_allclose(values, expected, atol=1e-6)  # prob, every head, in order
    at.radio(key="importance_mode").set_value(4).run()
    assert any("Top-5 predictions, mode 4" in m.value for m in at.markdown)
    at.selectbox(key="importance_metric").set_value("patch_dist").run()
    assert not at.exception and not at.error


def test_importance_mean_over_all_images_and_overview_map(demo, tmp_path):
    folder = small_image_folder(tmp_path, demo.class_names)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"images": str(folder)})
    at.run()
    at.switch_page("pages/overview_page.py").run()
    assert not at.exception and not at.error
    assert at.button[0].label == "Compute head importance for 12 image(s)"
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("12 images; each point") for c in at.caption)
    target = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))[5]
    at.text_input(key="overview_search").input(target).run()
    assert at.query_params["image"] == target
    at.text_input(key="overview_search").input("no-such-image").run()
    assert any("No image id contains" in w.value for w in at.warning)
    at.switch_page("pages/importance_page.py").run()
    at.toggle(key="importance_mean").set_value(True).run()
    assert not at.exception and not at.error
    assert any(s.value.startswith("All 12 images") for s in at.subheader)
