"""End-to-end tests in Debian's Chromium against `streamlit run app.py`.

Every wait names the content it needs and the end of the script run that draws it
(``helpers.wait_for_app``); nothing waits for a fixed time (timeouts are only the
ceiling of a failing test). The server reads the cache prepared by the ``prepared``
fixture (conftest.py), so the pages find what these tests open already computed,
except where a test is about computing.
"""
from __future__ import annotations

import io
import re
import zipfile
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.helpers import (CHARTS_DRAWN_JS, LAST_ON_CLICKS, NARROW, assert_no_exception,
                               chart, click_chart, download, keyed, open_app,
                               open_page_from_sidebar, query_param, runs,
                               saw_page_not_found, wait_for_app)

from app_pages.keypoints_page import RANKED_ROW_PX
from ui.pages import PAGES, by_name

pytestmark = pytest.mark.e2e
DEFAULT = next(p for p in PAGES if p.default)

# on the demo set, what each page of the table draws last (the run has reached its end)
LAST_ON_DEMO = {"overview": "overview_compute", "importance": "png_importance_mode_predictions",
                "strength": "strength_compute", "patterns": "pattern_compute",
                "rollout": "ro_checkpoint", "keypoints": "spurious_compute",
                "classes": "classes_compute", "compare": "csv_compare_maps_right"}
# the page's width, and what sticks out past the window outside a box of its own that
# scrolls (a table's, a wide chart's): cut off or making the page scroll sideways
OVERFLOW_JS = """() => {
  const width = window.innerWidth;
  const main = document.querySelector('[data-testid="stMain"]');
  const scrolls = (e) => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
  const out = [];
  for (const el of main.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right <= width + 1) continue;
    let a = el.parentElement;
    while (a && a !== main && !scrolls(a)) a = a.parentElement;
    if (a && a !== main) continue;
    const box = el.closest('[data-testid="stElementContainer"]');
    out.push([el.tagName, box ? box.innerText.slice(0, 60) : '', Math.round(r.right)]);
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, out: out.slice(0, 5)};
}"""
ASKS = re.compile(r"Compute now \(\d+ images\)")
ROW_PX = 35  # Streamlit's dataframe header height (and its rows' by default)
URL_HAS_HEAD = "() => /[?&](layer|head)=/.test(window.location.search)"


def url(app_url: str, path: str = "", **params: object) -> str:
    return f"{app_url}/{path}" + (f"?{urlencode(params)}" if params else "")


def test_a_fresh_servers_first_session_opens_a_shared_link(first_visit):
    assert not first_visit["not_found"]
    assert "Attention patterns" in first_visit["heading"]
    # the page was not blank while the engine loaded: the message showed first
    assert first_visit["saw_loading"]


@pytest.mark.parametrize("entry", PAGES, ids=[p.name for p in PAGES])
def test_every_page_opens(page, app_url, entry):
    open_app(page, url(app_url, entry.name), keyed(page, LAST_ON_DEMO[entry.name]))
    assert not saw_page_not_found(page)  # a direct link must not flash "Page not found"
    expect(page.locator("h1").first).to_contain_text(entry.heading)
    assert_no_exception(page)


@pytest.mark.parametrize("path", ["", DEFAULT.name])
def test_a_fresh_session_opens_the_default_page_at_the_root_and_at_its_path(
        page, app_url, prepared, path):
    image_id = prepared.demo_ids[123]
    open_app(page, url(app_url, path, image=image_id), keyed(page, "overview_compute"),
             page.get_by_text(f"Image {image_id}", exact=False))
    assert not saw_page_not_found(page)
    expect(page.locator("h1").first).to_have_text(DEFAULT.heading)
    assert query_param(page, "image") == image_id


@pytest.mark.parametrize("entry", PAGES, ids=[p.name for p in PAGES])
def test_nothing_sticks_out_of_a_narrow_window(page, app_url, prepared, entry):
    """At 420 px wide, every page of the table (on a set whose whole-set views are
    computed) keeps to the window: wide tables and charts scroll in their own box."""
    page.set_viewport_size(NARROW)
    open_app(page, url(app_url, entry.name, images=prepared.clicks),
             page.locator("h1", has_text=entry.heading), keyed(page, LAST_ON_CLICKS[entry.name]))
    page.wait_for_function(CHARTS_DRAWN_JS, polling=100, timeout=60_000)
    assert_no_exception(page)
    measured = page.evaluate(OVERFLOW_JS)
    assert measured["scrollWidth"] <= measured["width"], measured
    assert not measured["out"], measured


def test_the_pages_ask_before_computing_over_the_demo_set(page, app_url):
    open_app(page, url(app_url), keyed(page, "overview_compute"))
    expect(keyed(page, "overview_compute").get_by_role("button")).to_have_text(ASKS)
    expect(page.get_by_text("The map of all images needs every image of the set")).to_be_visible()
    open_page_from_sidebar(page, "Rollout", keyed(page, "faithfulness_compute"),
                           keyed(page, "csv_faithfulness_image"))
    expect(keyed(page, "faithfulness_compute").get_by_role("button")).to_have_text(ASKS)
    assert_no_exception(page)


def test_a_shared_link_opens_the_same_view_after_reload(page, app_url, prepared):
    image_id = prepared.demo_ids[123]
    ready = [page.get_by_text("Layer 4, head 1: strength by hop"),
             page.get_by_text("layer 4, head 1", exact=False).first,
             page.get_by_text(f"Image {image_id}", exact=False).first,
             keyed(page, "strength_compute")]
    open_app(page, url(app_url, "strength", image=image_id, layer=4, head=1), *ready)
    assert (query_param(page, "image"), query_param(page, "layer")) == (image_id, "4")
    page.reload()
    wait_for_app(page, *ready)
    assert_no_exception(page)


def test_sidebar_change_is_written_to_the_url(page, app_url):
    open_app(page, url(app_url), page.get_by_text("layer 0, head 0", exact=False).first,
             keyed(page, "overview_compute"))
    keyed(page, "w_head").get_by_role("slider").focus()
    page.keyboard.press("ArrowRight")
    wait_for_app(page, page.get_by_text("layer 0, head 1", exact=False).first,
                 keyed(page, "overview_compute"))
    page.wait_for_function("() => new URLSearchParams(location.search).get('head') === '1'")
    assert_no_exception(page)


def test_clicking_an_image_in_the_overview_map_selects_it_for_importance(page, app_url, prepared):
    open_app(page, url(app_url, images=prepared.clicks),
             page.get_by_text("30 images; each point is one image"), chart(page, "overview_tsne"))
    before = query_param(page, "image")
    assert before
    click_chart(page, "overview_tsne", [(0.3, 0.35), (0.7, 0.65), (0.5, 0.2)],
                f"() => new URLSearchParams(location.search).get('image') !== {before!r}")
    chosen = query_param(page, "image")
    wait_for_app(page, page.get_by_text(f"Image {chosen}, true label", exact=False),
                 chart(page, "overview_tsne"))
    open_page_from_sidebar(page, "Importance", page.locator("h1", has_text="Head importance"),
                           page.get_by_text(f"Image {chosen}: the effect of pruning each head"),
                           keyed(page, "png_importance_mode_predictions"))
    assert query_param(page, "image") == chosen
    assert_no_exception(page)


def test_clicking_a_head_in_the_strength_scatter_selects_it_for_patterns(page, app_url):
    open_app(page, url(app_url, "strength", layer=0, head=0),
             page.get_by_text("Layer 0, head 0: strength by hop"), chart(page, "strength_scatter"))
    # the URL leaves out default values (layer 0, head 0): a new head adds one of them
    click_chart(page, "strength_scatter", [(0.6, 0.2), (0.8, 0.3), (0.4, 0.15)],
                URL_HAS_HEAD)
    layer, head = query_param(page, "layer") or "0", query_param(page, "head") or "0"
    assert (layer, head) != ("0", "0")
    wait_for_app(page, page.get_by_text(f"Layer {layer}, head {head}: strength by hop"))
    open_page_from_sidebar(page, "Patterns",
                           page.get_by_text(f"Head detail: layer {layer}, head {head}"))
    # defaults (0) are left out of the URL
    assert (query_param(page, "layer") or "0", query_param(page, "head") or "0") == (layer, head)
    assert_no_exception(page)


def test_clicking_a_head_in_the_pattern_layout_selects_it_everywhere(page, app_url, prepared):
    open_app(page, url(app_url, "patterns", images=prepared.clicks),
             page.get_by_text("Head detail: layer 0, head 0"),
             chart(page, "pattern_layout_density"))
    expect(keyed(page, "pattern_compute")).to_have_count(0)  # the layouts are cached
    click_chart(page, "pattern_layout_density",
                [(0.2, 0.3), (0.7, 0.7), (0.4, 0.8), (0.8, 0.2)], URL_HAS_HEAD)
    layer, head = query_param(page, "layer") or "0", query_param(page, "head") or "0"
    assert (layer, head) != ("0", "0")
    wait_for_app(page, page.get_by_text(f"Head detail: layer {layer}, head {head}"))
    open_page_from_sidebar(page, "Strength",
                           page.get_by_text(f"Layer {layer}, head {head}: strength by hop"))
    assert_no_exception(page)


@pytest.mark.parametrize("path,key,label,result", [
    ("", "overview_compute", "Compute now (9 images)", "9 images; each point is one image"),
    ("strength", "strength_compute", "Compute now (8 images)",
     "Do later layers attend more globally?"),
    ("patterns", "pattern_compute", "Compute now (9 images)",
     "(ringed in red) over all"),
])
def test_compute_now_computes_the_whole_set_once(page, app_url, prepared, path, key, label,
                                                 result):
    address = url(app_url, path, images=prepared.ask)
    open_app(page, address, keyed(page, key))
    button = keyed(page, key).get_by_role("button")
    expect(button).to_have_text(label)
    expect(page.get_by_text(result)).to_have_count(0)
    button.click()
    wait_for_app(page, page.get_by_text(result).first)
    expect(keyed(page, key)).to_have_count(0)  # the question is gone once answered
    assert_no_exception(page)
    page.goto(address)  # a new session: now from the cache, without asking
    wait_for_app(page, page.get_by_text(result).first)
    expect(keyed(page, key)).to_have_count(0)


def test_clicking_a_ranked_image_and_a_lift_cell_select_them_everywhere(page, app_url,
                                                                      prepared):
    first = prepared.spurious_ids[0]
    open_app(page, url(app_url, "keypoints", images=prepared.clicks, image=first),
             page.get_by_text(f"Image {first}", exact=False).first,
             keyed(page, "spurious_table").locator('[data-testid="stDataFrame"]'),
             chart(page, "keypoint_lift"))
    expect(keyed(page, "keypoints_compute")).to_have_count(0)  # the set is cached
    table = keyed(page, "spurious_table").locator('[data-testid="stDataFrame"]')
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    wanted = prepared.spurious_ids[2]  # the third row of the ranking: header + 2.5 rows
    page.mouse.click(box["x"] + 12, box["y"] + ROW_PX + RANKED_ROW_PX * 2.5)
    page.wait_for_function(
        f"() => new URLSearchParams(location.search).get('image') === {wanted!r}",
        polling=100, timeout=60_000)
    wait_for_app(page, page.get_by_text(f"Image {wanted}", exact=False).first,
                 chart(page, "keypoint_lift"))
    click_chart(page, "keypoint_lift", [(0.5, 0.6), (0.3, 0.4), (0.2, 0.2)], URL_HAS_HEAD)
    layer, head = query_param(page, "layer") or "0", query_param(page, "head") or "0"
    wait_for_app(page, page.get_by_text(f"Layer {layer}, head {head}: where attention goes"))
    open_page_from_sidebar(page, "Strength",
                           page.get_by_text(f"Layer {layer}, head {head}: strength by hop"))
    assert query_param(page, "image") == wanted
    assert_no_exception(page)


def test_uploaded_images_become_the_image_set_and_a_link_reopens_it(page, app_url):
    def png(value: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(np.full((40, 40, 3), value, dtype=np.uint8)).save(out, format="PNG")
        return out.getvalue()

    open_app(page, url(app_url), keyed(page, "overview_compute"))
    page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files([
        {"name": "dark.png", "mimeType": "image/png", "buffer": png(30)},
        {"name": "light.png", "mimeType": "image/png", "buffer": png(220)},
        {"name": "labels.csv", "mimeType": "text/csv", "buffer": b"dark.png,Bag\n"}])
    page.wait_for_function("() => window.location.search.includes('images=upload')")
    wait_for_app(page, page.get_by_text("2 images.", exact=False),
                 page.get_by_text("Image dark.png, true label: Bag"))
    query = page.url.split("?", 1)[1]
    assert_no_exception(page)
    other = page.context.new_page()  # a new session following a shared link
    open_app(other, f"{app_url}/strength?{query}", other.get_by_text("2 images.", exact=False),
             other.get_by_text("Image dark.png", exact=False).first,
             chart(other, "strength_scatter"))
    assert_no_exception(other)


def test_two_thousand_images_uploaded_as_one_zip_all_arrive_and_are_counted(page, app_url):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i in range(2000):
            png = io.BytesIO()
            Image.fromarray(np.full((28, 28), i % 256, dtype=np.uint8)).save(png, format="PNG")
            zf.writestr(f"set/img{i:04d}.png", png.getvalue())
    open_app(page, url(app_url), keyed(page, "overview_compute"))
    page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files([
        {"name": "set.zip", "mimeType": "application/zip", "buffer": out.getvalue()}])
    page.wait_for_function("() => window.location.search.includes('images=upload')")
    wait_for_app(page, page.get_by_text("1 file(s) received; 2,000 kept", exact=False),
                 page.get_by_text("2000 images.", exact=False))
    assert_no_exception(page)


# -- several sessions at once -------------------------------------------------------------

CONCURRENT_IMAGES = (901, 902)  # not in the prepared cache: every session computes
SESSIONS = 4


def reference(lm, image: int) -> dict[str, np.ndarray]:
    """What one session alone computes for a demo image: the engine in this process,
    without a cache, with the pages' default settings."""
    from core import load_dataset, run
    from core.analyses import EXPLANATIONS, FAITHFULNESS, IMPORTANCE
    from core.analyses.explanations import drawn
    from core.explain import RolloutParams

    ds = load_dataset("demo", lm.class_names)
    return {"importance": run(lm, ds, [image], IMPORTANCE).arrays[image]["importance"],
            "maps": drawn(run(lm, ds, [image], EXPLANATIONS, RolloutParams(),
                              target="prediction").arrays[image]),
            **{f"faith_{k}": v for k, v in
               run(lm, ds, [image], FAITHFULNESS).arrays[image].items()}}


# The trigger of the concurrent runs: each page clicks its sidebar link at one wall-clock
# time, ARM_MS after the arming starts (arming all pages takes milliseconds), so the
# runs start together however slowly Playwright reaches each page. A start signal, not
# a wait: the test then waits for each page's content as everywhere else.
ARM_MS = 2_000
# click the sidebar link named args[0] at the wall-clock time args[1] (ms); returns when armed
ARM_CLICK_JS = """([title, at]) => {
  const link = Array.from(document.querySelectorAll('[data-testid="stSidebarNav"] a'))
    .find((a) => a.textContent.trim() === title);
  if (!link) throw new Error('no sidebar link ' + title);
  setTimeout(() => link.click(), Math.max(0, at - Date.now()));
  return Date.now();
}"""


def page_time(pg) -> float:
    return pg.evaluate("Date.now()")


def read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data))


def test_four_sessions_computing_at_once_show_the_numbers_of_one_session_alone(
        new_context, first_visit, app_url, prepared, engine_model):
    from core.analyses.faithfulness import METHOD_NAMES
    from core.analyses.faithfulness import METRICS as FAITH_METRICS
    from core.analyses.importance import METRIC_COLUMNS, METRICS, shown
    from core.dataset.faithfulness_table import shown_metrics
    from core.explain import METHODS
    from core.explain.rollout import FUSIONS

    assert FUSIONS[0] == "mean"  # the Rollout page's default is RolloutParams()
    images = [CONCURRENT_IMAGES[k % len(CONCURRENT_IMAGES)] for k in range(SESSIONS)]
    opened = []  # (context, image, page kind, page): two tabs (two Streamlit sessions) each
    for c, image in enumerate(images):
        context = new_context()
        for kind in ("importance", "rollout"):
            opened.append((c, image, kind, context.new_page()))
    # every session first loads the app on the Overview page of its image (cheap: the
    # image's forward pass), so that the sessions connect and are idle ...
    for c, image, kind, pg in opened:
        pg.goto(url(app_url, image=prepared.demo_ids[image]), wait_until="commit")
    for c, image, kind, pg in opened:
        wait_for_app(pg, pg.get_by_text(f"Image {prepared.demo_ids[image]}", exact=False),
                     keyed(pg, "overview_compute"), timeout_ms=300_000)
    # ... then all switch to their page at the same moment (a click armed in each page)
    before = [len(runs(pg)) for *_, pg in opened]
    at = page_time(opened[0][-1]) + ARM_MS
    armed = [pg.evaluate(ARM_CLICK_JS, [kind.title(), at]) for *_, kind, pg in opened]
    assert max(armed) < at, "arming the clicks took longer than ARM_MS"
    for c, image, kind, pg in opened:
        ready = ([keyed(pg, "csv_importance_heads"), keyed(pg, "png_importance_mode_predictions")]
                 if kind == "importance" else
                 [keyed(pg, "csv_maps_selected_model"), keyed(pg, "csv_faithfulness_image"),
                  keyed(pg, "ro_checkpoint")])
        wait_for_app(pg, pg.locator("h1", has_text=by_name(kind).heading),
                     pg.get_by_text(f"Image {prepared.demo_ids[image]}", exact=False), *ready,
                     timeout_ms=300_000)
        assert_no_exception(pg)

    # the four users' sessions were computing at one moment
    computing = [(c, runs(pg)[n]) for (c, *_, pg), n in zip(opened, before)]
    assert all(r["end"] is not None for _, r in computing), computing
    at_once = max(len({c for c, r in computing if r["start"] <= t < r["end"]})
                  for t in (r["start"] for _, r in computing))
    t0 = min(r["start"] for _, r in computing)
    assert at_once == SESSIONS, [(c, r["start"] - t0, r["end"] - t0) for c, r in computing]

    got: dict[tuple[int, str], pd.DataFrame] = {}
    for k, (c, image, kind, pg) in enumerate(opened):
        if kind == "importance":
            got[k, "importance"] = read_csv(download(pg, keyed(pg, "csv_importance_heads")
                                                     .get_by_role("button")))
        else:
            got[k, "maps"] = read_csv(download(pg, keyed(pg, "csv_maps_selected_model")
                                               .get_by_role("button")))
            got[k, "faith"] = read_csv(download(pg, keyed(pg, "csv_faithfulness_image")
                                                .get_by_role("button")))
        assert_no_exception(pg)

    lm = engine_model
    expected = {image: reference(lm, image) for image in CONCURRENT_IMAGES}
    labels = [METHODS[name].label for name in METHOD_NAMES]  # the table's rows
    layers, heads = lm.num_layers, lm.num_heads
    for k, (c, image, kind, pg) in enumerate(opened):
        want = expected[image]
        if kind == "importance":
            df = got[k, "importance"]
            columns = [METRIC_COLUMNS[m] for m in METRICS]  # each metric in its shown unit
            assert list(df.columns) == ["layer", "head", *columns]
            assert (df["layer"].to_numpy() == np.repeat(np.arange(layers), heads)).all()
            assert (df["head"].to_numpy() == np.tile(np.arange(heads), layers)).all()
            for m, metric in enumerate(METRICS):
                np.testing.assert_allclose(df[columns[m]].to_numpy(),
                                           shown(metric, want["importance"][m]).ravel(),
                                           rtol=0, atol=1e-4)
        else:
            maps = got[k, "maps"].set_index("patch")
            np.testing.assert_allclose(maps.to_numpy().T, want["maps"], rtol=0, atol=1e-6)
            faith = got[k, "faith"].set_index("method")
            assert list(faith.index) == labels
            for m in shown_metrics({m: want[f"faith_{m}"] for m in FAITH_METRICS}):
                short = FAITH_METRICS[m][0].replace(" perturbation", " pert.")
                column = [c for c in faith.columns if c[:-2] == short]  # "<label> ↑"
                assert len(column) == 1, (m, list(faith.columns))
                np.testing.assert_allclose(faith[column[0]].to_numpy(), want[f"faith_{m}"],
                                           rtol=0, atol=1e-6)
    # the sessions on one image agree with each other as well
    first: dict[tuple[int, str], pd.DataFrame] = {}
    for (k, name), df in got.items():
        twin = first.setdefault((opened[k][1], name), df)
        pd.testing.assert_frame_equal(df, twin, check_exact=False, atol=1e-6, rtol=0)
