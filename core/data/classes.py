"""Matching an image set's labels and class folders to the model's class names."""
from __future__ import annotations


def label_index(value: str, class_names: list[str]) -> int | None:
    """Match a label (class name, first part of a description, or index)."""
    wanted = value.strip().lower()
    for i, name in enumerate(class_names):
        if wanted in (name.lower(), name.split(",")[0].strip().lower()):
            return i
    if wanted.isascii() and wanted.isdigit() and int(wanted) < len(class_names):
        return int(wanted)
    return None


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
