"""Smoke test of every page with Streamlit's AppTest: no exception, the demo
image shown with its predictions and the attention overlay."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.model.loading import load_model
from core.analyses import FORWARD
from core.analyses.base import NoParams
from core.analyses.strength import STRENGTH
from core.engine import compute_images
from testing.images import demo_class_folder
from ui.pages import PAGES, by_name

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)

APP = str(Path(__file__).resolve().parents[2] / "app.py")


# Dataset-level views ask before computing over all 1,000 demo images; the app's
# cache (st.cache_resource) is shared by every AppTest in this process anyway.
TIMEOUT = 600


@pytest.fixture(scope="module", autouse=True)
def isolated_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VIT_EXPLORER_CACHE", str(tmp_path_factory.mktemp("app_cache")))
    mp.setenv("VIT_EXPLORER_DEVICE", "cpu")
    yield
    mp.undo()


@pytest.mark.parametrize("entry", PAGES, ids=[p.name for p in PAGES])
def test_page_shows_the_demo_image(entry):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(entry.path).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == entry.heading
    if FORWARD in entry.reads:  # the image, with the selected head's attention
        captions = [c for img in at.get("image") for c in img.captions]
        assert any("true label" in c for c in captions), captions
        assert any("layer 0, head 0" in c for c in captions), captions


def test_sidebar_selection_reaches_the_page_and_the_url():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
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
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"image": image_id, "layer": "4", "head": "1"})
    at.run()
    assert not at.exception
    captions = [c for img in at.get("image") for c in img.captions]
    assert any(image_id in c for c in captions), captions
    assert any("layer 4, head 1" in c for c in captions), captions


def test_a_bad_model_gives_a_message_not_a_crash():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"model": "resnet18", "checkpoint": "/no/such.pth"})
    at.run()
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error)


def open_page(page: str, params: dict[str, str]) -> AppTest:
    """A new session (as a new browser would) opened on `page` with link `params`."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page(page).run()
    return at


def chart_data(chart, column: str | None = None) -> pd.DataFrame:
    """The data set an Altair chart sent to the browser: the first, or the first with
    `column`."""
    frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
    return next(f for f in frames if column is None or column in f.columns)


def test_strength_page_shows_the_selected_heads_strength():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"layer": "2", "head": "3"})
    at.run()
    at.switch_page(by_name("strength").path).run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader][:3] == [
        "All heads of this image: how far each looks", "Layer 2, head 3: strength by hop",
        "Layer 2, head 3 over all images"]
    # the whole set is not computed without asking (the pages opened before computed a few)
    assert any(re.fullmatch(r"Compute now \(99\d images\)", b.label) for b in at.button)
    distance, scatter, bars = at.get("vega_lite_chart")[1:4]
    assert "head_pick" in scatter.proto.selection_mode  # clicking a head selects it
    lm = load_model("demo", device="cpu")
    batch, _, _ = load_batch(lm, demo_dataset(), [0])
    expected = compute_images(lm, batch, STRENGTH, [None], NoParams())[0]
    # every head's mean distance in a chart of its own, and the entropies, axes zoomed
    np.testing.assert_allclose(chart_data(distance, "value")["value"],
                               expected["mean_distance"].ravel(), rtol=1e-5)
    np.testing.assert_allclose(chart_data(scatter, "value")["value"],
                               expected["entropy"].ravel(), rtol=1e-5)
    assert '"zero": false' in scatter.proto.spec.replace(" ", "").replace('":', '": ')
    frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in distance.proto.datasets]
    reference = next(f for f in frames if "even" in f.columns)  # the reference line
    from core.analyses.strength import evenly_spread
    assert reference["even"][0] == pytest.approx(evenly_spread(lm.grid, lm.patch_size)[1])
    np.testing.assert_allclose(chart_data(bars)["strength"], expected["s"][2, 3], rtol=1e-5)


def test_evenly_spread_attention_by_hand():
    from core.analyses.strength import evenly_spread
    entropy, distance = evenly_spread((2, 2), (4, 4))  # 2 x 2 grid of 4-px patches
    # from each patch: itself 0, two neighbours at 4 px, the diagonal one at 4 * sqrt(2)
    assert distance == pytest.approx((0 + 4 + 4 + 4 * 2 ** 0.5) / 4)
    # s = (1/4, 1/4) over hops 0 and 1: entropy ln 2 / ln 2
    assert entropy == pytest.approx(1.0)


def rollout_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page(by_name("rollout").path).run()
    return at


def test_rollout_page_shows_every_method_layers_curves_and_a_comparison():
    at = rollout_page()
    captions = [c for img in at.get("image") for c in img.captions]
    for label in ("Attention rollout", "Gradient rollout for", "Gradient-weighted relevance for",
                  "Last-layer raw attention", "Patch ablation (probability drop) for"):
        assert sum(c.startswith(label) for c in captions) == 1, (label, captions)
    charts = [c.proto.spec for c in at.get("vega_lite_chart")]
    assert any("layer by layer (0 = first block)" in spec for spec in charts)
    assert any("Patches removed (deletion)" in spec for spec in charts)
    # the set's table reads a stratified sample of 200 images, which waits for the button
    assert any(b.label == "Compute now (200 images)" for b in at.button), [b.label for b in at.button]
    table = at.dataframe[0].value  # this image's scores
    assert len(table) == 6 and any("Pointing game" in c for c in table.columns)
    at.radio(key="ro_class").set_value("true label").run()
    assert any(c.startswith("Gradient rollout for Ankle boot") for img in at.get("image")
               for c in img.captions)
    at.text_input(key="ro_model").input("demo")
    at.button[[b.label for b in at.button].index("Compare")].click().run()
    assert not at.exception and not at.error
    captions = [c for img in at.get("image") for c in img.captions]
    assert sum(c == "Attention rollout" for c in captions) == 2  # selected, second
    at.text_input(key="ro_model").input("vit_tiny_patch16_224")
    at.text_input(key="ro_checkpoint").input("/no/such.safetensors")
    at.button[[b.label for b in at.button].index("Compare")].click().run()
    assert not at.exception
    assert any("second model could not be loaded" in e.value and "does not exist" in e.value
               for e in at.error)


def test_importance_page_draws_the_heads_and_the_partial_pruning(demo):
    from core.analyses import importance
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"image": demo_dataset().records[3].id, "layer": "2", "head": "1"})
    at.run()
    at.switch_page(by_name("importance").path).run()
    assert not at.exception and not at.error
    assert any("the effect of pruning each head" in s.value for s in at.subheader)
    assert any("Partial pruning of layer 2, head 1" in s.value for s in at.subheader)
    heads = next(c for c in at.get("vega_lite_chart") if "head name" in c.proto.spec)
    shown = chart_data(heads)
    ds = demo_dataset()
    x, _, _ = load_batch(demo, ds, [3])
    expected = importance.leave_one_out(demo, x, [ds.records[3].label])[0, 0].ravel()
    # prob in percentage points (as the predictions), every head, in order, named
    np.testing.assert_allclose(shown["value"].to_numpy(), 100 * expected, atol=1e-4)
    assert shown["head name"].tolist()[:5] == ["L0 H0", "L0 H1", "L0 H2", "L0 H3", "L1 H0"]
    assert '"detail"' in heads.proto.spec  # lines join heads within a layer only
    at.radio(key="importance_mode").set_value(4).run()
    assert any("Top-5 predictions, mode 4" in m.value for m in at.markdown)
    at.selectbox(key="importance_metric").set_value("patch_dist").run()
    assert not at.exception and not at.error


def test_importance_mean_over_all_images_and_overview_map(demo, tmp_path):
    folder = demo_class_folder(tmp_path, demo.class_names)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"images": str(folder)})
    at.run()
    at.switch_page(by_name("overview").path).run()
    assert not at.exception and not at.error
    assert at.button(key="overview_compute").label == "Compute now (12 images)"
    # the question says how long it takes (measured, or in forward passes before that)
    assert any(re.search(r"Computing it now takes about \d+ (s|min) \((measured on this "
                         r"server|importance not measured)", i.value) for i in at.info), \
        [i.value for i in at.info]
    at.button(key="overview_compute").click().run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("12 images; each point") for c in at.caption)
    target = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))[5]
    at.text_input(key="overview_search").input(target).run()
    assert at.query_params["image"] == target
    at.text_input(key="overview_search").input("no-such-image").run()
    assert any("No image id contains" in w.value for w in at.warning)
    at.switch_page(by_name("importance").path).run()
    at.toggle(key="importance_mean").set_value(True).run()
    assert not at.exception and not at.error  # computed for the overview: no question
    assert not [b for b in at.button if b.key == "importance_compute"]
    assert any(s.value.startswith("All 12 images") for s in at.subheader)
    at.selectbox(key="importance_metric").set_value("cls_dist").run()  # cannot be negative
    band = chart_data(next(c for c in at.get("vega_lite_chart") if "head name" in c.proto.spec))
    assert (band["low"] >= 0).all() and (band["high"] >= band["value"]).all()
    assert "(mean" not in band.columns


def test_the_report_reuses_the_entries_the_pages_computed(demo):
    """One typed parameter set per view: the report's analyses hit the cache entries the
    pages wrote (before, the Rollout page and the report computed the maps twice)."""
    import os

    from core.analyses import ANALYSES
    from core.engine import run
    from core.storage.cache import ArrayCache
    image_id = demo_dataset().records[9].id
    for page in (by_name("importance").path, by_name("strength").path,
                 by_name("patterns").path, by_name("rollout").path):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.query_params.update({"image": image_id})
        at.run()
        at.switch_page(page).run()
        assert not at.exception, at.exception
    cache = ArrayCache(os.environ["VIT_EXPLORER_CACHE"])
    ds = demo_dataset()
    index = ds.index_of(image_id)
    for name in ("forward", "importance", "strength", "patterns", "explanations"):  # report's
        assert run(demo, ds, [index], ANALYSES[name], cache=cache, compute=False).missing == [], name


def test_keypoints_page_lift_ranking_and_method_in_the_url(demo, tmp_path):
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=3)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"images": str(folder), "layer": "4", "head": "1"})
    at.run()
    at.switch_page(by_name("keypoints").path).run()
    assert not at.exception and not at.error
    assert any("no object masks" in i.value for i in at.info)  # keypoints stand in
    assert any("Layer 4, head 1: where attention goes" in s.value for s in at.subheader)
    at.button(key="keypoints_compute").click().run()
    at.button(key="spurious_compute").click().run()
    assert not at.exception and not at.error
    assert any("Per layer, the lift averaged over its heads: mean over 9 images" in c.value
               for c in at.caption)
    ranking = next(d.value for d in at.dataframe if "outside object (%)" in d.value.columns)
    assert len(ranking) == 9 and ranking["outside object (%)"].is_monotonic_decreasing
    assert set(ranking["object from"]) <= {"keypoints", "none"}
    at.selectbox(key="w_method").set_value("rollout").run()
    assert at.query_params["method"] == "rollout"
    assert not at.exception and not at.error
    link = AppTest.from_file(APP, default_timeout=TIMEOUT)  # the link, opened anew
    link.query_params.update(dict(at.query_params))
    link.run()
    link.switch_page(by_name("keypoints").path).run()
    assert link.selectbox(key="w_method").value == "rollout"
    def ranked(app):
        return next(d.value for d in app.dataframe if "outside object (%)" in d.value.columns)

    assert ranked(link)["image"].tolist() == ranked(at)["image"].tolist()


def test_importance_page_interactions_estimate_and_k_in_the_url(demo):
    from core.analyses import INTERACTIONS
    from core.analyses.interactions import InteractionParams
    ds = demo_dataset()
    at = open_page(by_name("importance").path, {"image": ds.records[3].id})
    assert not at.exception and not at.error

    def heatmap(test):
        return chart_data(next(c for c in test.get("vega_lite_chart")
                               if "Pruned with (L layer" in c.proto.spec))

    x, _, _ = load_batch(demo, ds, [3])
    expected = compute_images(demo, x, INTERACTIONS, [ds.records[3].label], InteractionParams())[0]
    shown = heatmap(at)
    assert len(shown) == 64
    off = shown["first"] != shown["second"]
    np.testing.assert_allclose(shown["interaction"][off],  # percentage points, as the heads
                               100 * expected["interaction"][0][~np.eye(8, dtype=bool)],
                               atol=1e-4)
    assert any("Spearman rank correlation with the exact values above" in m.value
               for m in at.markdown)  # the estimate beside the exact values
    at.number_input(key="w_k").set_value(4).run()
    assert at.query_params["k"] == "4" and len(heatmap(at)) == 16
    link = open_page(by_name("importance").path, dict(at.query_params))
    assert link.number_input(key="w_k").value == 4 and len(heatmap(link)) == 16


def test_importance_page_shows_the_estimate_until_exact_values_exist(demo, monkeypatch):
    from core.analyses import IMPORTANCE_ESTIMATE
    monkeypatch.setenv("VIT_EXPLORER_AUTO_EXACT_TOKENS", "0")  # as for a large model
    ds = demo_dataset()
    at = open_page(by_name("importance").path, {"image": ds.records[17].id})
    assert not at.exception and not at.error
    assert any("ESTIMATED effect of pruning" in s.value for s in at.subheader)
    assert any("not measured by pruning" in w.value for w in at.warning)
    heads = next(c for c in at.get("vega_lite_chart") if "head name" in c.proto.spec)
    x, _, _ = load_batch(demo, ds, [17])
    signed = compute_images(demo, x, IMPORTANCE_ESTIMATE, [ds.records[17].label], None)[0]["signed"]
    np.testing.assert_allclose(chart_data(heads)["value"], signed.ravel(), rtol=1e-5)
    assert not [c for c in at.get("vega_lite_chart")  # nothing costly runs unasked
                if "Pruned with (L layer" in c.proto.spec]
    at.button(key="importance_exact").click().run()
    assert not at.exception and not at.error
    assert any(s.value == f"Image {ds.records[17].id}: the effect of pruning each head"
               for s in at.subheader)


def test_classes_page_contrasts_two_classes_kept_in_the_url(demo, tmp_path):
    from core.dataset import CLASS_VIEWS
    from core.dataset.class_views import contrast
    from core.engine import run_step
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=3)
    at = open_page(by_name("classes").path, {"images": str(folder)})
    assert not at.exception and not at.error
    at.button(key="classes_compute").click().run()
    assert not at.exception and not at.error
    assert any(s.value == "Heads that matter for Sandal but not for Sneaker"
               for s in at.subheader)  # the set's classes: its folders, sorted
    at.selectbox(key="w_first_class").set_value(2).run()  # Trouser
    at.selectbox(key="class_metric").set_value("jsd").run()
    assert at.query_params["first_class"] == "2" and at.query_params["metric"] == "jsd"
    assert any(s.value == "Heads that matter for Trouser but not for Sneaker"
               for s in at.subheader)
    ds = load_dataset_for(folder, demo)
    expected = contrast(run_step(demo, ds, CLASS_VIEWS).arrays, 2, 1, "jsd")
    shown = at.dataframe[0].value
    np.testing.assert_allclose(shown["difference"], expected["difference"][:len(shown)],
                               rtol=1e-5)
    link = open_page(by_name("classes").path, dict(at.query_params))
    assert not link.exception and not link.error
    assert link.dataframe[0].value.equals(shown)


def load_dataset_for(folder, lm):
    from core.data.datasets import load_dataset
    return load_dataset(str(folder), lm.class_names)


# Every setting that changes a page's view, set away from its default: (widget kind,
# widget key, value). Whole-set views are computed first (buttons) on a small folder.
LINK_SETTINGS = {
    by_name("overview").path: (["overview_compute"], [
        ("selectbox", "overview_metric", "cls_dist")]),
    by_name("importance").path: (["importance_compute", "estimate_compute"], [
        ("selectbox", "importance_metric", "jsd"), ("radio", "importance_mode", 3),
        ("number_input", "w_k", 5), ("toggle", "importance_mean", True)]),
    by_name("patterns").path: (["pattern_compute"], [
        ("radio", "pattern_layout_kind", "CLS attention"), ("radio", "pattern_view", "points"),
        ("number_input", "pattern_top", 5.0), ("selectbox", "pattern_token", 7)]),
    by_name("rollout").path: ([], [
        ("selectbox", "ro_fusion", "max"), ("slider", "ro_discard", 0.5),
        ("slider", "ro_start", 2), ("radio", "ro_class", "true label")]),
}


@pytest.mark.parametrize("page", list(LINK_SETTINGS))
def test_a_link_keeps_every_setting_of_the_page(demo, tmp_path, page):
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=2)
    at = open_page(page, {"images": str(folder)})
    buttons, settings = LINK_SETTINGS[page]

    def compute_asked() -> None:  # whole-set views appear once computed
        for button in buttons:
            if [b for b in at.button if b.key == button]:
                at.button(key=button).click().run()

    compute_asked()
    for kind, key, value in settings:
        getattr(at, kind)(key=key).set_value(value).run()
        compute_asked()
    assert not at.exception and not at.error
    link = open_page(page, dict(at.query_params))  # a new browser opening the link
    assert not link.exception and not link.error
    assert dict(link.query_params) == dict(at.query_params)
    shown = [(kind, key, value) for kind, key, value in settings
             if [w for w in getattr(at, kind) if w.key == key]]  # some hide others (mean)
    assert len(shown) >= len(settings) - 1
    for kind, key, value in shown:
        assert getattr(link, kind)(key=key).value == value, key
    assert ([c.proto.spec for c in link.get("vega_lite_chart")]
            == [c.proto.spec for c in at.get("vega_lite_chart")])
    assert [s.value for s in link.subheader] == [s.value for s in at.subheader]


def test_the_second_model_is_kept_in_the_link(demo):
    at = open_page(by_name("rollout").path, {})
    at.text_input(key="ro_model").input("demo")
    at.button[[b.label for b in at.button].index("Compare")].click().run()
    assert at.query_params["model2"] == "demo"
    link = open_page(by_name("rollout").path, dict(at.query_params))
    assert link.text_input(key="ro_model").value == "demo"
    captions = [c for img in link.get("image") for c in img.captions]
    assert sum(c == "Attention rollout" for c in captions) == 2  # selected, second


@pytest.mark.parametrize("entry", PAGES, ids=[p.name for p in PAGES])
def test_every_chart_offers_its_data_as_csv(demo, tmp_path, entry):
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=2)
    at = open_page(entry.path, {"images": str(folder)})
    for button in [b for b in at.button if b.key and b.key.endswith("_compute")]:
        at.button(key=button.key).click().run()  # whole-set charts too
    assert not at.exception and not at.error
    def key_of(element) -> str:  # ids read "$$ID-<hash>-<key>"
        return element.proto.id.split("-", 2)[-1]

    csv_keys = {key_of(b) for b in at.get("download_button") if "CSV" in b.proto.label}
    pngs = [key_of(b)[4:] for b in at.get("download_button") if key_of(b).startswith("png_")]
    assert len(at.get("vega_lite_chart")) == len(pngs) > 0  # every chart has its buttons
    for name in pngs:
        assert f"csv_{name}" in csv_keys, name
    for png in at.get("download_button"):  # matplotlib figures
        if key_of(png).startswith("fig_"):
            assert "csv_" + key_of(png)[4:] in csv_keys


def test_compare_page_shows_two_images_side_by_side_and_keeps_them_in_the_link(demo):
    from core.analyses import importance
    ds = demo_dataset()
    at = open_page(by_name("compare").path, {"image": ds.records[2].id,
                                                 "other": ds.records[5].id})
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader][:2] == [ds.records[2].id, ds.records[5].id]
    charts = [c for c in at.get("vega_lite_chart") if "head name" in c.proto.spec]
    assert len(charts) == 2
    x, _, _ = load_batch(demo, ds, [2, 5])
    expected = importance.leave_one_out(demo, x, [ds.records[i].label for i in (2, 5)])
    for chart, values in zip(charts, expected):
        np.testing.assert_allclose(chart_data(chart)["value"], 100 * values[0].ravel(),
                                   atol=1e-4)
    captions = [c for img in at.get("image") for c in img.captions]
    assert sum(c == "Patch ablation (probability drop)" for c in captions) == 2
    at.selectbox(key="compare_other").set_value(ds.records[7].id).run()
    link = open_page(by_name("compare").path, dict(at.query_params))
    assert link.subheader[1].value == ds.records[7].id


def test_folders_that_are_not_model_classes_colour_the_overview_and_skip_nothing(demo,
                                                                                 tmp_path):
    import shutil
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=2)
    for old, new in (("Trouser", "china"), ("Sandal", "flower")):
        shutil.move(folder / old, folder / new)
    at = open_page(by_name("overview").path, {"images": str(folder)})
    at.button(key="overview_compute").click().run()
    assert not at.exception and not at.error
    assert not [e for e in at.sidebar.get("expander") if "skipped" in e.proto.label]
    assert any("china" in i.value and "flower" in i.value and "predicted class" in i.value
               for i in at.sidebar.info)
    chart = next(c for c in at.get("vega_lite_chart") if "t-SNE" in c.proto.spec
                 or '"class"' in c.proto.spec and "image" in c.proto.spec)
    frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
    classes = set(next(f for f in frames if "class" in f.columns)["class"])
    assert classes == {"china", "flower", "Sneaker"}  # coloured by the set's own classes
    image = next(r for r in sorted(p.relative_to(folder).as_posix()
                                   for p in folder.rglob("*.png")) if r.startswith("china"))
    page = open_page(by_name("importance").path, {"images": str(folder), "image": image})
    assert any("its class in the set, 'china', is not one of the model's classes" in c.value
               for c in page.caption)


def test_a_rerun_decodes_no_image_and_runs_no_forward_again(monkeypatch):
    """The selected image's decoding and the head matrix of the Patterns page are kept
    across reruns (before, every rerun decoded the file and ran a forward)."""
    from core.display import head_detail
    from ui import resources
    calls = []
    decode, forward = resources.load_batch, head_detail.head_matrix
    monkeypatch.setattr(resources, "load_batch",
                        lambda *args: calls.append("decode") or decode(*args))
    monkeypatch.setattr(head_detail, "head_matrix",
                        lambda *args: calls.append("forward") or forward(*args))
    resources._model_input.clear()
    resources._head_matrix.clear()
    at = open_page(by_name("patterns").path, {"image": demo_dataset().records[41].id,
                                              "layer": "3", "head": "2"})
    assert not at.exception and not at.error
    assert set(calls) == {"decode", "forward"}
    calls.clear()
    at.run()
    assert not at.exception and calls == []


def test_compare_page_draws_both_columns_on_one_scale():
    """Issue 30: the two columns' charts had scales of their own (each zoomed to its
    image), so the same height meant different values."""
    import json

    at = open_page(by_name("compare").path, {})
    assert not at.exception, at.exception
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]

    def y_domains(spec: dict) -> list:
        return [p["encoding"]["y"].get("scale", {}).get("domain") for p in spec.get("layer", [])
                if isinstance(p.get("encoding", {}).get("y"), dict)
                and "title" in p["encoding"]["y"]]

    importance = [y_domains(s) for s in specs if "head name" in json.dumps(s)]
    distance = [y_domains(s) for s in specs if "spread" in json.dumps(s)]
    for pair in (importance, distance):
        assert len(pair) == 2 and pair[0] == pair[1] and None not in pair[0], pair


def test_the_shortcut_ranking_says_what_it_measures_and_shows_it_first(demo, tmp_path):
    """Issue 30: the ranking's "changes" column was off-screen at 1,400 px, unexplained
    (the fill itself changes most predictions) and its thumbnails too small to show a
    marker."""
    import base64
    import json

    from ui.keypoints_charts import FILL_CHANGES, FILLED_TOP, PROBABILITY

    folder = demo_class_folder(tmp_path, demo.class_names, per_class=3)
    at = open_page(by_name("keypoints").path, {"images": str(folder)})
    if any(b.key == "spurious_compute" for b in at.button):  # not cached by a test before
        at.button(key="spurious_compute").click().run()
    assert not at.exception and not at.error
    table = next(d for d in at.dataframe if "outside object (%)" in d.value.columns)
    columns = list(table.value.columns)
    assert columns[:5] == ["thumbnail", "image", "predicted", FILLED_TOP, FILL_CHANGES]
    assert PROBABILITY in columns and all(" → " in v for v in table.value[PROBABILITY])
    config = json.loads(table.proto.columns)
    widths = [config[c]["width"] for c in columns[:5]]
    assert sum(widths) <= 900, widths  # in view in a 1,400 px window (about 940 px wide)
    assert all("help" in config[c] for c in (FILLED_TOP, FILL_CHANGES, PROBABILITY))
    assert table.proto.row_height >= 64
    png = base64.b64decode(table.value["thumbnail"][0].split(",", 1)[1])
    assert Image.open(io.BytesIO(png)).width >= 80
    share = next(c.value for c in at.caption if "on its own it changes" in c.value)
    assert re.search(r"on its own it changes \d+\.\d% of all 9 predictions", share), share
