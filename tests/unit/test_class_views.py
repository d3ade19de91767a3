"""Class views (paper 001, section 7): per-class means equal a loop over each class's
images, images are grouped by label or prediction, two classes are contrasted head by
head."""
from __future__ import annotations

import numpy as np
import pytest

from core.analyses import FORWARD, IMPORTANCE, PATTERNS, STRENGTH
from core.analyses.pattern_labels import LABEL_NAMES, decide
from core.data.datasets import load_dataset
from core.dataset import CLASS_VIEWS
from core.dataset.class_views import ClassViewParams, class_names, contrast
from core.engine import run, run_step
from core.storage.cache import ArrayCache
from testing.images import CLASS_FOLDERS, demo_class_folder


@pytest.fixture(scope="module")
def folder(demo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classes")
    ds = load_dataset(str(demo_class_folder(tmp, demo.class_names, per_class=4)),
                      demo.class_names)
    return ds, ArrayCache(tmp / "cache")


def test_class_means_equal_a_loop_over_each_classs_images(demo, folder):
    ds, cache = folder
    arrays = run_step(demo, ds, CLASS_VIEWS, cache=cache).arrays
    everything = list(range(len(ds)))
    importance = run(demo, ds, everything, IMPORTANCE, cache=cache).arrays
    strength = run(demo, ds, everything, STRENGTH, cache=cache).arrays
    patterns = run(demo, ds, everything, PATTERNS, cache=cache).arrays
    names = class_names(demo, ds, ClassViewParams())  # the folders, sorted
    assert names == sorted(demo.class_names[c] for c in CLASS_FOLDERS)
    assert list(arrays["classes"]) == list(range(len(CLASS_FOLDERS)))
    assert list(arrays["counts"]) == [4] * len(CLASS_FOLDERS) and arrays["unlabeled"] == 0
    for row, c in enumerate(arrays["classes"]):
        mine = [i for i in everything if ds.records[i].group == names[c]]
        values = np.stack([importance[i]["importance"] for i in mine])
        np.testing.assert_allclose(arrays["importance_mean"][row], values.mean(0), rtol=1e-6)
        np.testing.assert_allclose(arrays["importance_std"][row], values.std(0), atol=1e-7)
        np.testing.assert_allclose(arrays["entropy"][row],
                                   np.mean([strength[i]["entropy"] for i in mine], 0))
        labels = [decide(patterns[i]["label_scores"])[0] for i in mine]
        for k in range(len(LABEL_NAMES)):
            share = np.mean([(label == k).mean() for label in labels])
            assert arrays["pattern_mix"][row, k] == pytest.approx(share)
    np.testing.assert_allclose(arrays["pattern_mix"].sum(1), 1.0)
    assert not np.allclose(arrays["importance_mean"][0], arrays["importance_mean"][1])


def test_grouping_by_prediction_uses_the_predicted_class(demo, folder):
    ds, cache = folder
    arrays = run_step(demo, ds, CLASS_VIEWS, ClassViewParams("prediction"), cache=cache).arrays
    logits = run(demo, ds, list(range(len(ds))), FORWARD, cache=cache).arrays
    predicted = np.array([logits[i]["logits"].argmax() for i in range(len(ds))])
    classes, counts = np.unique(predicted, return_counts=True)
    np.testing.assert_array_equal(arrays["classes"], classes)
    np.testing.assert_array_equal(arrays["counts"], counts)
    with pytest.raises(ValueError, match="Group images by"):
        ClassViewParams("folder")


def test_contrast_orders_heads_by_the_difference_of_two_classes(demo, folder):
    ds, cache = folder
    arrays = run_step(demo, ds, CLASS_VIEWS, cache=cache).arrays
    first, second = (int(c) for c in arrays["classes"][:2])
    frame = contrast(arrays, first, second, "jsd")
    assert len(frame) == demo.num_layers * demo.num_heads
    assert frame["difference"].is_monotonic_decreasing
    top = frame.iloc[0]
    m = 1  # jsd
    a = arrays["importance_mean"][0, m, int(top["layer"]), int(top["head"])]
    b = arrays["importance_mean"][1, m, int(top["layer"]), int(top["head"])]
    assert top["difference"] == pytest.approx(a - b)
    reverse = contrast(arrays, second, first, "jsd")
    assert reverse.iloc[-1]["difference"] == pytest.approx(-top["difference"])
    with pytest.raises(ValueError, match="no images"):
        contrast(arrays, first, 99, "jsd")


def test_folders_that_are_not_model_classes_are_still_classes(demo, tmp_path):
    import shutil
    root = demo_class_folder(tmp_path, demo.class_names, per_class=2)
    for old, new in (("Trouser", "china"), ("Sandal", "flower")):
        shutil.move(root / old, root / new)
    ds = load_dataset(str(root), demo.class_names)
    assert not ds.skipped and ds.classes == ["Sneaker", "china", "flower"]
    arrays = run_step(demo, ds, CLASS_VIEWS).arrays
    assert list(arrays["counts"]) == [2, 2, 2] and arrays["unlabeled"] == 0
