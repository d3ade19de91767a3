"""Folders of demo images on disk, for tests that need a small image set."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from core.data.builtin import demo_dataset

CLASS_FOLDERS = (1, 5, 7)  # Trouser, Sandal, Sneaker: class names usable as folder names


def demo_class_folder(root: Path, class_names: list[str], per_class: int = 4,
                      labels: tuple[int, ...] = CLASS_FOLDERS) -> Path:
    """The first `per_class` demo images of each class of `labels` as PNG files in
    class subfolders named after the classes (ImageFolder layout): ``root/imgs``."""
    ds = demo_dataset()
    folder = root / "imgs"
    for label in labels:
        sub = folder / class_names[label]
        sub.mkdir(parents=True)
        picks = [i for i, r in enumerate(ds.records) if r.label == label][:per_class]
        for i in picks:
            Image.fromarray(ds.pixels[i]).save(sub / f"{ds.records[i].id}.png")
    return folder


def demo_flat_folder(root: Path, count: int = 6, broken: bool = True) -> Path:
    """The first `count` demo images as ``imgN.png`` in a flat folder ``root/imgs``,
    plus a ``broken.png`` that is not an image when `broken`."""
    ds = demo_dataset()
    folder = root / "imgs"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(ds.pixels[i]).save(folder / f"img{i}.png")
    if broken:
        (folder / "broken.png").write_bytes(b"not an image")
    return folder
