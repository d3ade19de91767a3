"""An image folder as a Dataset: a class-subfolder (ImageFolder) tree, or a flat folder
with an optional ``labels.csv``, and its ``masks/``. Files that cannot be used are
skipped and listed in ``Dataset.skipped`` with the reason; they never stop the rest."""
from __future__ import annotations

from pathlib import Path

from core.data.classes import label_index, not_model_classes
from core.data.labels_csv import read_labels
from core.data.layout import IMAGE_SUFFIXES, LABELS_FILE, MASKS_FOLDER
from core.data.masks import find_masks
from core.data.paths import data_roots
from core.data.records import Dataset, ImageRecord
from core.data.walk import Budget, display_name, entries


def images_of(files: list[Path], root: Path, group: str | None,
              class_names: list[str]) -> list[ImageRecord]:
    """The image files among `files` of the set's class `group` (labelled with the
    model's class of that name, if any)."""
    label = None if group is None else label_index(group, class_names)
    return [ImageRecord(id=display_name(p, root), path=p, label=label, group=group)
            for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def folder_dataset(root: Path, class_names: list[str], roots: list[Path] | None = None
                   ) -> Dataset:
    """ImageFolder layout when `root` has (non-hidden) subfolders that hold images,
    else flat; a subfolder without images is listed, and so is an image beside class
    folders. Every file and subfolder must lie inside `roots` (default:
    ``VIT_EXPLORER_DATA_ROOTS``)."""
    roots = data_roots() if roots is None else roots
    skipped: list[tuple[str, str]] = []
    budget = Budget()
    files, subdirs = entries(root, root, roots, skipped, budget)
    classes: dict[str, list[ImageRecord]] = {}
    for sub in [d for d in subdirs if d.name != MASKS_FOLDER]:
        shown, before = display_name(sub, root), len(skipped)
        found = images_of(entries(sub, root, roots, skipped, budget)[0], root, shown,
                          class_names)
        if found:
            classes[shown] = found
        elif not budget.stopped and f"{shown}/" not in dict(skipped[before:]):  # empty
            skipped.append((f"{shown}/", "a subfolder without images; left out"))
    records: list[ImageRecord] = []
    if classes:
        records = [record for found in classes.values() for record in found]
        skipped += [(r.id, "an image beside class folders belongs to no class: put it in "
                     "a class folder") for r in images_of(files, root, None, class_names)]
        notes = not_model_classes(list(classes), class_names, "class folder(s)")
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
    notes += [budget.stopped] if budget.stopped else []
    return Dataset(name=str(root), records=records, skipped=skipped, mask_files=mask_files,
                   mask_problems=mask_problems, notes=notes)
