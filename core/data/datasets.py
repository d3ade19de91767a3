"""Image sets: a built-in set (``demo``, ``demo-watermark``), a class-subfolder
(ImageFolder) tree, or a flat folder with an optional ``labels.csv``
(``filename,label``). A folder may hold a ``masks/`` folder of binary PNG object
masks named like its images (SPEC "Keypoints and spurious correlations", "Object");
masks that are missing or cannot be read are listed in ``Dataset.mask_problems``.

Labels are matched to the model's class names (by name, case-insensitive, or
by integer index). Files that cannot be used are skipped and listed in
``Dataset.skipped`` with the reason; they never stop the rest. Every file and
subfolder is checked on its own: hidden folders are ignored, only regular files are
read (never a pipe or device), nothing whose links lead out of the allowed folders
(``core.data.paths``), and ``labels.csv`` is read up to a bounded size, row by row.
"""
from __future__ import annotations

import csv
import json
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data import uploads
from core.data.decode import ImageDecodeError, decode_image
from core.data.layout import IMAGE_SUFFIXES, LABELS_FILE, MASKS_FOLDER, is_image_name
from core.data.paths import BUILTIN_DIRS, allowed_path, data_roots, inside
from core.model.loading import LoadedModel
from core.storage.keys import image_hash
from core.failures import Failure

NOT_AN_IMAGE = "could not be read as an image"  # how a file that can never be used is listed
MAX_LABEL_ROWS = 100_000  # rows of labels.csv read; the rest is refused with a message
MAX_LABEL_BYTES = 16 * 2**20
OUTSIDE = "its link leads outside the folders this server may read; it was not read"


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
    name: str
    records: list[ImageRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    pixels: np.ndarray | None = None  # built-in sets only: N x H x W uint8
    masks: np.ndarray | None = None  # built-in sets that ship object masks: N x H x W bool
    mask_files: dict[int, Path] = field(default_factory=dict)  # image index -> its mask
    mask_problems: list[tuple[str, str]] = field(default_factory=list)  # (image id, reason)
    notes: list[str] = field(default_factory=list)  # facts about the set that lose nothing

    @property
    def classes(self) -> list[str]:
        """The set's own classes (its folders or labels), sorted: what pages colour and
        group by, whether or not they are model classes."""
        return sorted({r.group for r in self.records if r.group is not None})

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
    if wanted.isascii() and wanted.isdigit() and int(wanted) < len(class_names):
        return int(wanted)
    return None


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
    return Dataset(name=name, records=records, pixels=data["images"],
                   masks=data["masks"] if "masks" in data else None)


def demo_dataset() -> Dataset:
    return builtin_dataset("demo")


def find_masks(root: Path, records: list[ImageRecord], roots: list[Path]
               ) -> tuple[dict[int, Path], list[tuple[str, str]]]:
    """Each image's mask in ``root/masks`` (same relative path, as given or with the
    suffix .png; regular files inside `roots` only), checked by decoding it; the
    missing and unreadable ones listed."""
    folder = root / MASKS_FOLDER
    if not folder.is_dir():
        return {}, []
    found: dict[int, Path] = {}
    problems: list[tuple[str, str]] = []
    for i, record in enumerate(records):
        relative = record.path.relative_to(root)
        candidates = [folder / relative, folder / relative.with_suffix(".png")]
        path = next((c for c in candidates if c.is_file() and inside(c, roots)), None)
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


def entries(folder: Path, root: Path, roots: list[Path], skipped: list[tuple[str, str]]
            ) -> tuple[list[Path], list[Path]]:
    """The usable regular files and subfolders of `folder`, sorted. Hidden folders and
    files are left out (hidden images listed); an image or labels.csv that is not a
    regular file (a pipe, a device, a broken link) or whose link leaves `roots` is
    listed with the reason and never opened."""
    files: list[Path] = []
    folders: list[Path] = []
    for path in sorted(folder.iterdir()):
        wanted = is_image_name(path.name) or path.name == LABELS_FILE
        if path.name.startswith("."):
            if wanted and not path.is_dir():
                skipped.append((display_name(path, root), "a hidden file (its name starts "
                                "with a dot); rename it to use it"))
        elif not inside(path, roots):
            if wanted or path.is_dir():
                skipped.append((display_name(path, root) + ("/" if path.is_dir() else ""),
                                OUTSIDE))
        elif path.is_dir():
            folders.append(path)
        elif path.is_file():
            files.append(path)
        elif wanted:
            skipped.append((display_name(path, root), "not a regular file (a pipe, a device "
                            "or a broken link); it was not read"))
    return files, folders


def images_of(files: list[Path], root: Path, group: str | None,
              class_names: list[str]) -> list[ImageRecord]:
    """The image files among `files` of the set's class `group` (labelled with the
    model's class of that name, if any)."""
    label = None if group is None else label_index(group, class_names)
    return [ImageRecord(id=display_name(p, root), path=p, label=label, group=group)
            for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def not_model_classes(groups: list[str], class_names: list[str], what: str) -> list[str]:
    """Notes on the set's classes that are not model classes (nothing is lost: their
    images are grouped by them and measured on their predicted class)."""
    unmatched = [g for g in groups if label_index(g, class_names) is None]
    if not unmatched:
        return []
    return [f"{len(unmatched)} {what} not among the model's classes "
            f"({', '.join(repr(g) for g in unmatched[:5])}"
            + (", ..." if len(unmatched) > 5 else "") + "): their images are grouped by "
            "them, and measured on the model's predicted class."]


def folder_dataset(root: Path, class_names: list[str], roots: list[Path] | None = None
                   ) -> Dataset:
    """ImageFolder layout when `root` has (non-hidden) subfolders, else flat. Every file
    and subfolder must lie inside `roots` (default: ``VIT_EXPLORER_DATA_ROOTS``)."""
    roots = data_roots() if roots is None else roots
    skipped: list[tuple[str, str]] = []
    files, subdirs = entries(root, root, roots, skipped)
    subdirs = [d for d in subdirs if d.name != MASKS_FOLDER]
    records: list[ImageRecord] = []
    if subdirs:
        for sub in subdirs:
            records += images_of(entries(sub, root, roots, skipped)[0], root,
                                 display_name(sub, root), class_names)
        notes = not_model_classes([display_name(d, root) for d in subdirs], class_names,
                                  "class folder(s)")
    else:
        labels_csv = [p for p in files if p.name == LABELS_FILE]
        labels = read_labels(labels_csv[0], skipped) if labels_csv else {}
        records = [record for p in files
                   for record in images_of([p], root, labels.get(p.name), class_names)]
        present = {p.name for p in files}
        skipped += [(name, f"listed in {LABELS_FILE} but no such image file")
                    for name in sorted(set(labels) - present)]
        notes = not_model_classes(sorted(set(labels.values())), class_names,
                                  f"label(s) in {LABELS_FILE}")
    mask_files, mask_problems = find_masks(root, records, roots)
    return Dataset(name=str(root), records=records, skipped=skipped, mask_files=mask_files,
                   mask_problems=mask_problems, notes=notes)


def label_lines(path: Path, skipped: list[tuple[str, str]]) -> list[str]:
    """The first MAX_LABEL_ROWS lines of labels.csv (at most MAX_LABEL_BYTES), as UTF-8
    or else Latin-1 text; a longer file is listed as cut."""
    with path.open("rb") as f:
        data = f.read(MAX_LABEL_BYTES + 1)
    cut = len(data) > MAX_LABEL_BYTES
    if cut:
        data = data[:MAX_LABEL_BYTES].rpartition(b"\n")[0]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.splitlines()
    if cut or len(lines) > MAX_LABEL_ROWS:
        skipped.append((LABELS_FILE, f"longer than this server reads ({MAX_LABEL_ROWS:,} "
                        f"rows, {MAX_LABEL_BYTES // 2**20} MB): only the first "
                        f"{min(len(lines), MAX_LABEL_ROWS):,} rows were read"))
    return lines[:MAX_LABEL_ROWS]


def read_labels(path: Path, skipped: list[tuple[str, str]]) -> dict[str, str]:
    """filename -> label as written in labels.csv (a header row is allowed); a row that
    cannot be read is listed and the others kept."""
    labels: dict[str, str] = {}
    for number, line in enumerate(label_lines(path, skipped), start=1):
        try:
            row = next(csv.reader(io.StringIO(line)), [])
        except csv.Error as err:
            skipped.append((f"{LABELS_FILE} row {number}", f"could not be read ({err})"))
            continue
        if len(row) < 2 or row[0].strip().lower() in ("filename", "file"):
            continue
        name, value = row[0].strip(), row[1].strip()
        labels[name] = value
    return labels


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


def load_batch(lm: LoadedModel, ds: Dataset, indices: list[int]
               ) -> tuple[torch.Tensor | None, list[int], dict[int, Failure]]:
    """Decode and preprocess `indices`; returns (batch, kept indices, the others'
    failures by index)."""
    mode = "L" if lm.data_config["input_size"][0] == 1 else "RGB"
    tensors, kept, failures = [], [], {}
    for i in indices:
        try:
            tensors.append(lm.transform(ds.image(i, mode)))
            kept.append(i)
        except ImageDecodeError as err:
            failures[i] = Failure("not_an_image", f"{NOT_AN_IMAGE}: {err}")
        except OSError as err:  # permissions, vanished file
            failures[i] = Failure("unreadable",
                                  f"could not be opened: {err.strerror or err}")
        except MemoryError:
            failures[i] = Failure("too_large", "needs more memory than this server "
                                  "can give it; resize it first")
    return (torch.stack(tensors) if tensors else None), kept, failures
