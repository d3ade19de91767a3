"""The batch precompute command and the engine's cached runs."""
from __future__ import annotations

import numpy as np
import pytest

from core import precompute
from core.model import capture
from core.storage.cache import ArrayCache
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.engine import run
from core.analyses.forward import FORWARD

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)


def test_forward_analysis_matches_a_direct_capture(demo, tmp_path):
    ds = demo_dataset()
    result = run(demo, ds, [3, 7], FORWARD, cache=ArrayCache(tmp_path))
    batch, _, _ = load_batch(demo, ds, [3, 7])
    out = capture.forward(demo, batch)
    for b, i in enumerate([3, 7]):
        np.testing.assert_allclose(result.arrays[i]["logits"], out.logits[b].numpy(), rtol=1e-5)
        expected = out.attention[b, :, :, 0, 1:].numpy()  # CLS row over the 49 patches
        np.testing.assert_allclose(result.arrays[i]["cls_attention"], expected, rtol=1e-5)
    again = run(demo, ds, [3, 7], FORWARD, cache=ArrayCache(tmp_path))
    assert again.from_cache == 2


def test_precompute_fills_the_cache_for_the_demo_set(demo, tmp_path, capsys, monkeypatch):
    # the forward analysis only: the slower analyses and the dataset steps are run by
    # the precompute on small folders in their own tests (test_faithfulness, test_patterns)
    monkeypatch.setattr(precompute, "ANALYSES", {"forward": FORWARD})
    monkeypatch.setattr(precompute, "DATASET_STEPS", {})
    assert precompute.main(["--model", "demo", "--images", "demo", "--cache", str(tmp_path),
                            "--device", "cpu"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("precompute: 1000 images done, 0 skipped")
    assert len(ArrayCache(tmp_path)) == 1000 + 1  # and the forward's measured cost
    assert ArrayCache(tmp_path).get(f"timing|{demo.identity}|forward")["images"] >= 1000  # this process's
    ds = demo_dataset()
    cached = run(precompute.load_model("demo", device="cpu"), ds, list(range(1000)), FORWARD,
                 cache=ArrayCache(tmp_path))
    assert cached.from_cache == 1000
    preds = np.array([cached.arrays[i]["logits"].argmax() for i in range(1000)])
    labels = np.array([r.label for r in ds.records])
    assert (preds == labels).mean() >= 0.85  # the shipped model on the shipped sample


def test_precompute_skips_bad_files_and_says_why(tmp_path, capsys):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "ok.png")
    (folder / "bad.png").write_bytes(b"")
    code = precompute.main(["--model", "demo", "--images", str(folder),
                            "--cache", str(tmp_path / "c"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped bad.png: could not be read" in out
    assert out.strip().splitlines()[-1].startswith("precompute: 1 images done, 1 skipped")


def test_precompute_refuses_a_bad_model_with_a_message(tmp_path, capsys):
    assert precompute.main(["--model", "resnet18", "--checkpoint", str(tmp_path / "x.pth"),
                            "--cache", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err



def test_precompute_reads_keypoints_and_shortcuts_with_masks(demo, tmp_path, capsys):
    from PIL import Image

    from core.analyses import SPURIOUS
    from core.data.datasets import load_dataset
    from testing.images import demo_flat_folder
    folder = demo_flat_folder(tmp_path, count=4, broken=False)
    (folder / "masks").mkdir()
    for i in range(4):
        Image.fromarray(demo_dataset().pixels[i]).save(folder / "masks" / f"img{i}.png")
    assert precompute.main(["--model", "demo", "--images", str(folder), "--cache",
                            str(tmp_path / "cache"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "keypoints: lift of the CLS attention on keypoint patches" in out
    assert "spurious: mean share of the explanation outside the object" in out
    assert "(objects from: 4 mask, 0 keypoints, 0 none)" in out
    ds = load_dataset(str(folder), demo.class_names)
    assert run(demo, ds, list(range(4)), SPURIOUS, cache=ArrayCache(tmp_path / "cache"),
               compute=False).from_cache == 4
