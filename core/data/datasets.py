"""Image sets: a built-in set (``demo``, ``demo-watermark``), a class-subfolder
(ImageFolder) tree, or a flat folder with an optional ``labels.csv``
(``filename,label``). A folder may hold a ``masks/`` folder of binary PNG object
masks named like its images (SPEC "Keypoints and spurious correlations", "Object");
masks that are missing or cannot be read are listed in ``Dataset.mask_problems``.

Labels are matched to the model's class names (by name, case-insensitive, or
by integer index). Files that cannot be used are skipped and listed in
``Dataset.skipped`` with the reason; they never stop the rest.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data import uploads
from core.data.decode import ImageDecodeError, decode_image
from core.data.paths import BUILTIN_DIRS, allowed_path
from core.model.loading import LoadedModel
from core.storage.keys import image_hash

NOT_AN_IMAGE = "could not be read as an image"  # how a file that can never be used is listed
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
MASKS_FOLDER = "masks"  # a folder's object masks; never a class folder


@dataclass
class ImageRecord:
    """One image: a stable id, its label index (None if unknown) and where it lives."""

    id: str
    label: int | None
    path: Path | None = None  # None for the demo set (pixels held in memory)


@dataclass
class Dataset:
    name: str
    records: list[ImageRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    pixels: np.ndarray | None = None  # built-in sets only: N x H x W uint8
    masks: np.ndarray | None = None  # built-in sets that ship object masks: N x H x W bool
    mask_files: dict[int, Path] = field(default_factory=dict)  # image index -> its mask
    mask_problems: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)

    def __len__(self) -> int:
        return len(self.records)

    def index_of(self, image_id: str) -> int | None:
        return next((i for i, r in enumerate(self.records) if r.id == image_id), None)

    def raw_bytes(self, i: int) -> bytes:
        record = self.records[i]
        if record.path is None:
            return self.pixels[i].tobytes()
        return record.path.read_bytes()

    def content_hash(self, i: int) -> str:
        """Hash of the image's content (cache key part)."""
        return image_hash(self.raw_bytes(i))

    def image(self, i: int, mode: str) -> Image.Image:
        """Decode image `i` in `mode` (raises ImageDecodeError or OSError)."""
        if self.records[i].path is None:
            return Image.fromarray(self.pixels[i]).convert(mode)
        return decode_image(self.raw_bytes(i), mode)

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
        """Hash of image `i`'s object mask (cache key part of analyses that read it)."""
        if self.masks is not None:
            return image_hash(self.masks[i].tobytes())
        if i in self.mask_files:
            try:
                return image_hash(self.mask_files[i].read_bytes())
            except OSError:
                return "unreadable"
        return "pixels" if self.objects_from_pixels else "none"


def display_name(path: Path, root: Path) -> str:
    """The path below `root` as printable text: bytes that are not UTF-8 are written as
    escapes (``caf\\xe9.png``), so two such names never share an id."""
    raw = str(path.relative_to(root)).encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def label_index(value: str, class_names: list[str]) -> int | None:
    """Match a label (class name, first part of a description, or index)."""
    wanted = value.strip().lower()
    for i, name in enumerate(class_names):
        if wanted in (name.lower(), name.split(",")[0].strip().lower()):
            return i
    if wanted.isdigit() and int(wanted) < len(class_names):
        return int(wanted)
    return None


def builtin_dataset(name: str) -> Dataset:
    """A built-in sample of the Fashion-MNIST test set (``demo``, ``demo-watermark``)."""
    data = np.load(BUILTIN_DIRS[name] / "images.npz", allow_pickle=False)
    records = [ImageRecord(id=f"test-{int(t):05d}", label=int(y))
               for t, y in zip(data["test_index"], data["labels"])]
    return Dataset(name=name, records=records, pixels=data["images"],
                   masks=data["masks"] if "masks" in data else None)


def demo_dataset() -> Dataset:
    return builtin_dataset("demo")


def find_masks(root: Path, records: list[ImageRecord]
               ) -> tuple[dict[int, Path], list[tuple[str, str]]]:
    """Each image's mask in ``root/masks`` (same relative path, as given or with the
    suffix .png), checked by decoding it; the missing and unreadable ones listed."""
    folder = root / MASKS_FOLDER
    if not folder.is_dir():
        return {}, []
    found: dict[int, Path] = {}
    problems: list[tuple[str, str]] = []
    for i, record in enumerate(records):
        relative = record.path.relative_to(root)
        candidates = [folder / relative, folder / relative.with_suffix(".png")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            problems.append((record.id, f"no mask {MASKS_FOLDER}/{relative.with_suffix('.png')}; "
                             "its keypoint patches stand in for the object"))
            continue
        try:
            decode_image(path.read_bytes(), "L")
            found[i] = path
        except (ImageDecodeError, OSError) as err:
            problems.append((record.id, f"mask {display_name(path, root)} could not be read "
                             f"({err}); its keypoint patches stand in for the object"))
    return found, problems


def folder_dataset(root: Path, class_names: list[str]) -> Dataset:
    """ImageFolder layout when `root` has subfolders with images, else flat."""
    skipped: list[tuple[str, str]] = []
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name != MASKS_FOLDER)
    records: list[ImageRecord] = []
    if subdirs:
        for sub in subdirs:
            label = label_index(sub.name, class_names)
            if label is None:
                folder = display_name(sub, root)
                skipped.append((folder + "/", f"class folder {folder!r} is not one of the "
                                "model's classes; its images are shown without a label"))
            records += [ImageRecord(id=display_name(p, root), label=label, path=p)
                        for p in sorted(sub.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        labels = read_labels(root / "labels.csv", class_names, skipped)
        records = [ImageRecord(id=display_name(p, root), label=labels.get(p.name), path=p)
                   for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        present = {p.name for p in root.iterdir()}
        skipped += [(name, "listed in labels.csv but no such image file")
                    for name in sorted(set(labels) - present)]
    mask_files, mask_problems = find_masks(root, records)
    return Dataset(name=str(root), records=records, skipped=skipped, mask_files=mask_files,
                   mask_problems=mask_problems)


def read_labels(path: Path, class_names: list[str],
                skipped: list[tuple[str, str]]) -> dict[str, int | None]:
    """filename -> label index from labels.csv (a header row is allowed)."""
    if not path.is_file():
        return {}
    labels: dict[str, int | None] = {}
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) < 2 or row[0].strip().lower() in ("filename", "file"):
                continue
            name, value = row[0].strip(), row[1].strip()
            labels[name] = label_index(value, class_names)
            if labels[name] is None:
                skipped.append((name, f"label {value!r} in labels.csv is not one of the "
                                "model's classes; the image is shown without a label"))
    return labels


def load_dataset(spec: str, class_names: list[str]) -> Dataset:
    """A built-in set (``demo``, ``demo-watermark``), an uploaded set (``upload:<digest>``,
    ``core.data.uploads``) or a folder path."""
    if spec.strip() in BUILTIN_DIRS:
        return builtin_dataset(spec.strip())
    if spec.startswith(uploads.PREFIX):
        ds = folder_dataset(uploads.upload_folder(spec), class_names)
        ds.name = spec
        return ds
    root = allowed_path(spec)
    if not root.is_dir():
        raise ValueError(f"Image folder {spec!r} does not exist or is not a folder; give "
                         "'demo' or a folder of images (class subfolders, or flat with "
                         "an optional labels.csv).")
    return folder_dataset(root, class_names)


def load_batch(lm: LoadedModel, ds: Dataset, indices: list[int]
               ) -> tuple[torch.Tensor | None, list[int], list[tuple[str, str]]]:
    """Decode and preprocess `indices`; returns (batch, kept indices, failures)."""
    mode = "L" if lm.data_config["input_size"][0] == 1 else "RGB"
    tensors, kept, failures = [], [], []
    for i in indices:
        try:
            tensors.append(lm.transform(ds.image(i, mode)))
            kept.append(i)
        except ImageDecodeError as err:
            failures.append((ds.records[i].id, f"{NOT_AN_IMAGE}: {err}"))
        except OSError as err:  # permissions, vanished file
            failures.append((ds.records[i].id, f"could not be opened: {err.strerror or err}"))
    return (torch.stack(tensors) if tensors else None), kept, failures
