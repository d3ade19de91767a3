"""The names an image folder is read by (``core.data.folders``) and an upload is
stored by (``core.data.uploads``): image file suffixes, the labels file, the masks
folder."""
from __future__ import annotations

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
LABELS_FILE = "labels.csv"
MASKS_FOLDER = "masks"  # a folder's object masks; never a class folder


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)
