"""The one-file HTML report: every view present, self-contained, images decodable."""
from __future__ import annotations

import base64
import io
import re

from PIL import Image

from core.data.datasets import demo_dataset
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
    assert re.search(r"\d+\.\d% of the Gradient-weighted relevance map lies outside", page)
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
