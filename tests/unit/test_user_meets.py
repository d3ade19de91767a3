"""Issue 30, "What a user meets, round two": each item as the user met it, in AppTest
(or on the report function), on the demo model and small folders of demo images."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from testing.images import demo_class_folder, demo_flat_folder
from ui.pages import by_name

pytestmark = pytest.mark.slow  # AppTest of whole pages

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 300


@pytest.fixture(scope="module", autouse=True)
def isolated_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("VIT_EXPLORER_CACHE", str(tmp_path_factory.mktemp("user_meets_cache")))
    mp.setenv("VIT_EXPLORER_UPLOADS", str(tmp_path_factory.mktemp("user_meets_uploads")))
    mp.setenv("VIT_EXPLORER_DEVICE", "cpu")
    yield
    mp.undo()


def open_page(page: str, params: dict[str, str]) -> AppTest:
    """A new session (as a new browser would) opened on `page` with link `params`."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    at.switch_page(by_name(page).path).run()
    return at


def url(at: AppTest, name: str) -> str:
    """A selection value in the URL (defaults are left out)."""
    return at.query_params.get(name, "0" if name in ("layer", "head") else "")


def chart_frame(chart) -> pd.DataFrame:
    """The largest data set an Altair chart sent to the browser."""
    import pyarrow as pa
    frames = [pa.ipc.open_stream(d.data.data).read_pandas() for d in chart.proto.datasets]
    return max(frames, key=len)


def chart_with(at: AppTest, text: str):
    return next(c for c in at.get("vega_lite_chart") if text in c.proto.spec)


@pytest.fixture
def downloads(monkeypatch) -> dict[str, tuple[str, object]]:
    """Every download button drawn: widget key -> (file name, data)."""
    seen: dict[str, tuple[str, object]] = {}
    original = st.download_button

    def recorded(label, data, file_name=None, *args, **kwargs):
        seen[kwargs.get("key") or label] = (file_name, data)
        return original(label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", recorded)
    return seen


def csv_of(downloads, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(downloads[key][1]))


# 1. A pick in a table is applied once, and the sidebar follows it.

def test_a_table_pick_selects_its_head_once_and_the_sidebar_follows(demo, tmp_path,
                                                                     downloads):
    folder = demo_class_folder(tmp_path, demo.class_names, per_class=2)
    at = open_page("classes", {"images": str(folder)})
    at.button(key="classes_compute").click().run()
    assert not at.exception and not at.error
    difference = chart_frame(chart_with(at, "minus"))["difference"]  # item 9: one unit
    saved = csv_of(downloads, "csv_classes_difference")
    np.testing.assert_allclose(saved["difference_probability_drop_percentage_points"],
                               difference, rtol=1e-6)
    assert np.abs(difference).max() > 1  # percentage points, not fractions
    table = at.dataframe[0].value
    row = next(i for i in range(len(table))
               if (int(table["layer"][i]), int(table["head"][i])) != (0, 0))
    layer, head = int(table["layer"][row]), int(table["head"][row])
    at.session_state["classes_top"] = {"selection": {"rows": [row], "columns": []}}
    at.run()  # the click on the row
    assert not at.exception
    assert (url(at, "layer"), url(at, "head")) == (str(layer), str(head))
    assert (at.slider(key="w_layer").value, at.slider(key="w_head").value) == (layer, head)
    other = (head + 1) % demo.num_heads
    at.slider(key="w_head").set_value(other).run()  # the table still holds its row
    assert url(at, "head") == str(other)
    assert at.slider(key="w_head").value == other
    at.switch_page(by_name("strength").path).run()
    assert f"Layer {layer}, head {other}: strength by hop" in [s.value for s in at.subheader]


# 2. The Classes page on a folder without classes.

def test_the_classes_page_on_an_unlabeled_folder_says_why_and_what_to_do(demo, tmp_path):
    folder = demo_flat_folder(tmp_path, count=4, broken=False)
    at = open_page("classes", {"images": str(folder)})
    if [b for b in at.button if b.key == "classes_compute"]:
        at.button(key="classes_compute").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    said = " ".join(m.value for m in [*at.info, *at.warning])
    assert "no image" in said.lower() and "known class" in said, said
    assert "predicted class" in said and "labels.csv" in said, said  # what to do

    from core.data.datasets import load_dataset
    from core.dataset import CLASS_VIEWS
    from core.engine import run_step
    with pytest.raises(ValueError, match="(?i)no image of the set has a known class"):
        run_step(demo, load_dataset(str(folder), demo.class_names), CLASS_VIEWS)  # the CLI's


# 3. An unknown image id in a link.

def test_an_unknown_image_in_a_link_is_named_and_the_first_image_shown():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)  # the link opens the default page
    at.query_params["image"] = "nope"
    at.run()
    assert not at.exception and not at.error
    assert any("nope" in w.value for w in at.warning), [w.value for w in at.warning]
    first = demo_dataset().records[0].id
    assert any(f"Image {first}," in c for img in at.get("image") for c in img.captions)


# 4. The Compare page never compares an image with itself by default.

@pytest.mark.parametrize("position", [0, 1, -1])
def test_the_compare_page_defaults_to_another_image(position):
    ids = [r.id for r in demo_dataset().records]
    at = open_page("compare", {"image": ids[position]})
    assert not at.exception and not at.error
    left, right = (s.value for s in at.subheader[:2])
    assert left == ids[position] and right != left
    assert "other" not in at.query_params  # the default, not written into the link


# 5. Download file names.

def test_download_file_names_carry_the_model_the_image_and_the_view(downloads):
    image_id = demo_dataset().records[3].id
    at = open_page("importance", {"image": image_id, "layer": "2", "head": "1"})
    assert not at.exception and not at.error
    assert downloads["csv_importance_heads"][0] == f"demo_{image_id}_importance_heads.csv"
    assert downloads["png_importance_heads"][0] == f"demo_{image_id}_importance_heads.png"
    names = [name for name, _ in downloads.values()]
    assert all(name.startswith(f"demo_{image_id}_") for name in names), names


def test_a_download_file_name_is_safe():
    from ui.downloads import download_name
    assert (download_name("/models/my vit/", "a/b:c.png", "strength_by_hop", "csv")
            == "my_vit_a_b_c.png_strength_by_hop.csv")
    assert download_name("transformers:org/name", "x", "v", "png") == "name_x_v.png"


# 6. No true class claimed for an unlabeled image.

def test_no_true_class_is_claimed_for_an_unlabeled_image(demo, tmp_path):
    folder = demo_flat_folder(tmp_path, count=3, broken=False)
    at = open_page("overview", {"images": str(folder)})
    assert not at.exception and not at.error
    predictions = chart_with(at, "Predicted probability")
    assert "True label" not in predictions.proto.spec  # no legend of a true class
    labeled = open_page("overview", {})
    assert "True label" in chart_with(labeled, "Predicted probability").proto.spec

    from core.data.datasets import load_dataset
    from ui.report import image_report
    html = image_report(demo, load_dataset(str(folder), demo.class_names), 0, 0, 0)
    for claim in ("is the true class", "of the true class", "true label"):
        assert claim not in html.lower(), claim
    assert "no known true class" in html


# 7. The upload message's hint about lost files.

def png_bytes(i: int) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(demo_dataset().pixels[i]).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("files, hint", [
    ("zip", False), ("one", False), ("several", True)])
def test_the_lost_files_hint_only_after_several_separate_files(files, hint):
    if files == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for i in range(3):
                archive.writestr(f"img{i}.png", png_bytes(i))
        chosen = [("set.zip", buffer.getvalue(), "application/zip")]
    else:
        chosen = [(f"img{i}.png", png_bytes(i), "image/png")
                  for i in range(1 if files == "one" else 3)]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.file_uploader(key="w_upload").set_value(chosen).run()
    assert not at.exception
    message = " ".join(s.value for s in at.sidebar.success)
    assert "kept as the image set" in message, message
    assert ("could not send the rest" in message) == hint, message


# 8. The report shows a section that failed, with the reason.

def test_the_report_shows_a_failed_section_with_its_reason(demo, monkeypatch):
    from app_pages import strength_page
    from core.analyses import STRENGTH
    from ui.report import image_report
    from ui.report_html import Report
    arrays = Report.arrays

    def failing(self, analysis, params=None):
        if analysis is STRENGTH:
            raise RuntimeError("out of memory on the strength")
        return arrays(self, analysis, params)

    monkeypatch.setattr(Report, "arrays", failing)
    html = image_report(demo, demo_dataset(), 0, 1, 1)
    assert strength_page.HEADING in html and "out of memory on the strength" in html
    assert "What the whole model looks at" in html  # the other sections are still there


# 9. One unit per metric: charts, tables and CSVs agree and the columns say it.

def test_importance_values_are_percentage_points_in_charts_and_csvs(demo, downloads):
    from core.analyses import PARTIAL_PRUNING, importance
    from core.analyses.partial_pruning import PartialPruningParams
    from core.engine import compute_images
    ds = demo_dataset()
    at = open_page("importance", {"image": ds.records[3].id, "layer": "2", "head": "1"})
    assert not at.exception and not at.error
    x, _, _ = load_batch(demo, ds, [3])
    expected = 100 * importance.leave_one_out(demo, x, [ds.records[3].label])[0, 0].ravel()
    shown = chart_frame(chart_with(at, "head name"))
    np.testing.assert_allclose(shown["value"], expected, atol=1e-4)
    heads = csv_of(downloads, "csv_importance_heads")
    assert "prob" not in heads.columns
    np.testing.assert_allclose(heads["probability_drop_percentage_points"], expected, atol=1e-4)
    modes = compute_images(demo, x, PARTIAL_PRUNING, [ds.records[3].label],
                           PartialPruningParams(2, 1))[0]["metrics"][:, 0]
    bars = chart_with(at, "Pruning mode")
    assert "percentage points" in bars.proto.spec
    np.testing.assert_allclose(chart_frame(bars)["probability_drop_percentage_points"],
                               100 * modes, atol=1e-4)
    pairs = csv_of(downloads, "csv_importance_interactions")
    assert "probability_drop_percentage_points_interaction" in pairs.columns
    assert "prob_interaction" not in pairs.columns


def test_deletion_curves_are_in_percent_of_the_patches_and_say_so(downloads):
    at = open_page("rollout", {})
    assert not at.exception and not at.error
    curves = csv_of(downloads, "csv_deletion_insertion")
    assert "fraction" not in curves.columns
    removed = curves["percent_of_patches_removed_or_revealed"]
    assert removed.min() == 0 and removed.max() == 100
    assert curves["probability_percent"].between(0, 100).all()
