"""Large image sets: a page of a 20,000-image set renders in under 3 s (the sidebar's
image list was O(N^2): 41 s at this size). The set is synthetic (ids, labels and
28 x 28 pixels in memory), so the test costs no files. The bound is on the CPU time the
rerun costs this process (on an idle machine its wall time; 1.5-1.8 s here), so that
other work on a shared machine does not decide the outcome."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.data.records import Dataset, ImageRecord

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SIZE = 20_000
LIMIT_S = 3.0


def synthetic(spec: str, class_names: list[str]) -> Dataset:
    pixels = np.random.default_rng(0).integers(0, 255, (SIZE, 28, 28), dtype=np.uint8)
    return Dataset(name=spec, pixels=pixels, records=[
        ImageRecord(id=f"img{i:05d}.png", label=i % 10, group=class_names[i % 10])
        for i in range(SIZE)])


def test_a_page_of_a_20000_image_set_renders_in_under_3_s(tmp_path, monkeypatch):
    import ui.resources
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ui.resources, "load_dataset", synthetic)
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"images": f"synthetic-{SIZE}", "image": "img19999.png"})
    at.run()  # the first run loads the model and the set
    assert not at.exception, at.exception
    begin, cpu = time.perf_counter(), time.process_time()
    at.selectbox(key="w_image").set_value("img10000.png").run()
    took, wall = time.process_time() - cpu, time.perf_counter() - begin
    assert not at.exception, at.exception
    assert f"{SIZE} images" in " ".join(c.value for c in at.sidebar.caption)
    assert at.query_params["image"] in ("img10000.png", ["img10000.png"])
    print(f"a page of {SIZE:,} images: {took:.2f} s of CPU, {wall:.2f} s wall")
    assert took < LIMIT_S, f"{took:.1f} s of CPU"
