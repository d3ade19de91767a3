"""The built-in image sets (``demo``, ``demo-watermark``): samples of the Fashion-MNIST
test set, held in memory with their pixels (and object masks where shipped; for
``demo-watermark``, whose shortcut is known, which predictions rely on the marker and
each image without it)."""
from __future__ import annotations

import json

import numpy as np

from core.data.classes import label_index
from core.data.paths import BUILTIN_DIRS
from core.data.records import Dataset, ImageRecord
from core.data.watermark import without_marker


def builtin_dataset(name: str, class_names: list[str] | None = None) -> Dataset:
    """A built-in sample of the Fashion-MNIST test set (``demo``, ``demo-watermark``),
    labelled with the model's classes `class_names` where its class names match them
    (default: the built-in model's own classes)."""
    data = np.load(BUILTIN_DIRS[name] / "images.npz", allow_pickle=False)
    names = json.loads((BUILTIN_DIRS[name] / "config.json").read_text())["class_names"]
    labels = {y: label_index(n, names if class_names is None else class_names)
              for y, n in enumerate(names)}
    records = [ImageRecord(id=f"test-{int(t):05d}", label=labels[int(y)], group=names[int(y)])
               for t, y in zip(data["test_index"], data["labels"])]
    relies = data["relies"] if "relies" in data else None
    return Dataset(name=name, records=records, pixels=data["images"],
                   masks=data["masks"] if "masks" in data else None, relies=relies,
                   clean=None if relies is None else without_marker(data["images"]))


def demo_dataset() -> Dataset:
    """The built-in ``demo`` set, labelled with the built-in model's classes."""
    return builtin_dataset("demo")
