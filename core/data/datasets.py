"""A dataset spec becomes an image set: a built-in set (``demo``, ``demo-watermark``,
``core.data.builtin``), an uploaded set (``upload:<digest>``, ``core.data.uploads``)
or a folder below the allowed roots (``core.data.folders``)."""
from __future__ import annotations

from core.data import uploads
from core.data.builtin import builtin_dataset
from core.data.folders import folder_dataset
from core.data.paths import BUILTIN_DIRS, allowed_path
from core.data.records import Dataset


def load_dataset(spec: str, class_names: list[str]) -> Dataset:
    """A built-in set (``demo``, ``demo-watermark``), an uploaded set (``upload:<digest>``,
    ``core.data.uploads``) or a folder path."""
    if spec.strip() in BUILTIN_DIRS:
        return builtin_dataset(spec.strip(), class_names)
    if spec.startswith(uploads.PREFIX):
        folder = uploads.upload_folder(spec)
        ds = folder_dataset(folder, class_names, roots=[folder])
        ds.name = spec
        return ds
    root = allowed_path(spec)
    if not root.is_dir():
        raise ValueError(f"Image folder {spec!r} does not exist or is not a folder; give "
                         "'demo' or a folder of images (class subfolders, or flat with "
                         "an optional labels.csv).")
    return folder_dataset(root, class_names)
