"""The one-file HTML report: every view present, self-contained, images decodable."""
from __future__ import annotations

import base64
import html
import io
import re

from PIL import Image

from core.data.builtin import demo_dataset
from ui.report import image_report


def test_report_is_self_contained_with_every_view(demo, tmp_path):
    from core.storage.cache import ArrayCache
    ds = demo_dataset()
    page = image_report(demo, ds, 7, layer=3, head=1, cache=ArrayCache(tmp_path))
    assert page.startswith("<!doctype html>") and page.endswith("</html>")
    record = ds.records[7]
    assert f"Image {record.id} ({demo.class_names[record.label]})" in page
    for title in ("What the model predicts", "Which heads matter", "How far the heads look",
                  "The head&#x27;s attention pattern", "What the whole model looks at",
                  "Keypoints and shortcuts"):
        assert title in page, title
    assert "head 1 of layer 3" in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from outside
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 12
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()


def test_report_shows_what_its_pages_ask_for_only_once_computed(demo, tmp_path, monkeypatch):
    """The pages ask before exact importance on a large model and before the spurious
    scores (they need the whole set's ranking): the report says so and computes
    neither, until the cache holds them."""
    from core.analyses import IMPORTANCE, INTERACTIONS, SPURIOUS
    from core.engine import run
    from core.storage.cache import ArrayCache
    from ui.report_html import NOT_COMPUTED
    monkeypatch.setenv("VIT_EXPLORER_AUTO_EXACT_TOKENS", "1")  # exact importance is costly
    ds, cache = demo_dataset(), ArrayCache(tmp_path)
    page = image_report(demo, ds, 7, layer=3, head=1, cache=cache)
    assert page.count(html.escape(NOT_COMPUTED)) == 6  # importance, spurious, class views,
    # faithfulness, sanity checks, prompt
    for analysis in (IMPORTANCE, INTERACTIONS, SPURIOUS):
        assert run(demo, ds, [7], analysis, cache=cache, compute=False).missing == [7]
    run(demo, ds, [7], IMPORTANCE, cache=cache)
    run(demo, ds, [7], SPURIOUS, cache=cache)
    page = image_report(demo, ds, 7, layer=3, head=1, cache=cache)
    assert "Most important here: layer" in page
    assert re.search(r"\d+\.\d% of the Gradient-weighted relevance map lies outside", page)
    assert page.count(html.escape(NOT_COMPUTED)) == 5  # interactions, class views,
    # faithfulness, sanity, prompt


def test_report_has_interactions_the_estimate_and_the_class_when_cached(demo, tmp_path):
    from core.data.datasets import load_dataset
    from core.dataset import CLASS_VIEWS
    from core.engine import run, run_step
    from core.storage.cache import ArrayCache
    from testing.images import demo_class_folder
    ds = load_dataset(str(demo_class_folder(tmp_path, demo.class_names, per_class=2)),
                      demo.class_names)
    cache = ArrayCache(tmp_path / "cache")
    page = image_report(demo, ds, 0, layer=0, head=0, cache=cache)
    assert "Heads working together" in page and "Patch ablation" in page
    assert re.search(r"Spearman correlation of -?\d\.\d\d to the exact values", page)
    assert "than for the other classes" not in page  # class views not cached: not computed
    run_step(demo, ds, CLASS_VIEWS, cache=cache)
    page = image_report(demo, ds, 0, layer=0, head=0, cache=cache)
    name = demo.class_names[ds.records[0].label]
    assert re.search(rf"Heads that matter more for {name} than for the other classes "
                     r"\(mean over its 2 images\): layer \d, head \d", page)
    from core.dataset import SANITY
    run_step(demo, ds, SANITY, cache=cache)
    page = image_report(demo, ds, 0, layer=0, head=0, cache=cache)
    from core.analyses import FAITHFULNESS, PROMPT
    run(demo, ds, [0], PROMPT, cache=cache)
    run(demo, ds, [0], FAITHFULNESS, cache=cache)
    assert re.search(r"ROAD \(filled from their neighbours\) and deletion \(mean colour\): "
                     r"Attention rollout \d\.\d{3} and \d\.\d{3};", image_report(
                         demo, ds, 0, layer=0, head=0, cache=cache))
    assert re.search(r"The attention prompt, per inside and weight of the outside patches "
                     r"\(1 = as is\): object 0: [^;]+, \d+\.\d%", image_report(
                         demo, ds, 0, layer=0, head=0, cache=cache))
    assert re.search(r"Sanity checks over 6 images, .*Attention rollout -?\d\.\d\d "
                     r"\((depends on the model|survives randomisation: read with care)\)", page)
