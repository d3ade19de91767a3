"""An image set held in memory: its records (id, label, file, class in the set), its
object masks, what was skipped, and per-image access to pixels, masks and hashes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from core.data.decode import decode_image
from core.data.hashing import file_hash, image_hash


@dataclass
class ImageRecord:
    """One image: a stable id, its label (the model's class index, None if unknown),
    where it lives and its class in the set itself (its class folder, its label as
    labels.csv writes it, a built-in set's class; None if it has none)."""

    id: str
    label: int | None
    path: Path | None = None  # None for the demo set (pixels held in memory)
    group: str | None = None


@dataclass
class Dataset:
    """An image set: records in order, files left out with the reason, and for the
    built-in sets their pixels (and shipped masks) in memory."""

    name: str
    records: list[ImageRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    pixels: np.ndarray | None = None  # built-in sets only: N x H x W uint8
    masks: np.ndarray | None = None  # built-in sets that ship object masks: N x H x W bool
    relies: np.ndarray | None = None  # a set with a known shortcut: N bools, whether the
    # prediction relies on it (``demo-watermark``: it changes when the marker is erased)
    clean: np.ndarray | None = None  # with `relies`: N x H x W, each image without it
    mask_files: dict[int, Path] = field(default_factory=dict)  # image index -> its mask
    mask_problems: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)
    notes: list[str] = field(default_factory=list)  # facts about the set that lose nothing
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed: int = field(default=-1, init=False, repr=False, compare=False)  # records in _index

    @property
    def classes(self) -> list[str]:
        """The set's own classes (its folders or labels), sorted: what pages colour and
        group by, whether or not they are model classes."""
        return sorted({r.group for r in self.records if r.group is not None})

    def __len__(self) -> int:
        return len(self.records)

    def index_of(self, image_id: str) -> int | None:
        """The index of the image with id `image_id` (None if none), in constant time:
        the map is built once, on the first call, and rebuilt if the records change."""
        if self._indexed != len(self.records):
            self._index = {r.id: i for i, r in reversed(list(enumerate(self.records)))}
            self._indexed = len(self.records)
        return self._index.get(image_id)

    def content_hash(self, i: int) -> str:
        """Hash of the image's content (cache key part; a file is read once while it
        stays unchanged, ``core.data.hashing``)."""
        record = self.records[i]
        if record.path is None:
            return image_hash(self.pixels[i].tobytes())
        return file_hash(record.path)

    def image(self, i: int, mode: str) -> Image.Image:
        """Decode image `i` in `mode` (raises ImageDecodeError or OSError)."""
        record = self.records[i]
        if record.path is None:
            return Image.fromarray(self.pixels[i]).convert(mode)
        return decode_image(record.path.read_bytes(), mode)

    @property
    def objects_from_pixels(self) -> bool:
        """A built-in set without shipped masks: the object is its non-black pixels."""
        return self.pixels is not None and self.masks is None

    @property
    def has_objects(self) -> bool:
        """Whether any image's object is known (else keypoint patches stand in)."""
        return self.pixels is not None or bool(self.mask_files)

    def object_mask(self, i: int) -> Image.Image | None:
        """Image `i`'s object mask as a 0/255 grey image at the image's size, or None
        (no mask, or objects come from the pixels; raises ImageDecodeError, OSError)."""
        if self.masks is not None:
            return Image.fromarray(self.masks[i].astype(np.uint8) * 255)
        if i in self.mask_files:
            return decode_image(self.mask_files[i].read_bytes(), "L")
        return None

    def mask_hash(self, i: int) -> str:
        """Hash of image `i`'s object mask (cache key part of analyses that read it; a
        file is read once while it stays unchanged)."""
        if self.masks is not None:
            return image_hash(self.masks[i].tobytes())
        if i in self.mask_files:
            try:
                return file_hash(self.mask_files[i])
            except OSError:
                return "unreadable"
        return "pixels" if self.objects_from_pixels else "none"
