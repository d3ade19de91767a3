"""Walking an image folder one entry at a time, by the link rules: hidden entries are
left out, only regular files are read (never a pipe or a device), and nothing whose
link leads out of the allowed folders (``core.data.paths``); within a time and an
entry bound (a folder on a slow disk, or of millions of files, is cut short with a
note instead of holding the page)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from core.data.layout import LABELS_FILE, is_image_name
from core.data.paths import inside

OUTSIDE = "its link leads outside the folders this server may read; it was not read"
LISTING_SECONDS = 20.0  # $VIT_EXPLORER_LISTING_SECONDS: one set's folder walk
LISTING_ENTRIES = 500_000  # $VIT_EXPLORER_LISTING_ENTRIES: entries one walk reads


class Budget:
    """How long and how far one walk of a set's folders may go; once spent, `stopped`
    says so in words."""

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("VIT_EXPLORER_LISTING_SECONDS") or LISTING_SECONDS)
        self.entries = int(os.environ.get("VIT_EXPLORER_LISTING_ENTRIES") or LISTING_ENTRIES)
        self.deadline, self.read, self.stopped = time.monotonic() + self.seconds, 0, ""

    def spend(self) -> bool:
        """Count one entry: False once the walk is past its bounds."""
        if not self.stopped:
            self.read += 1
            if self.read > self.entries or time.monotonic() > self.deadline:
                self.stopped = (
                    f"Reading the folder stopped after {self.read - 1:,} entries "
                    f"(the bounds: {self.entries:,} entries, {self.seconds:g} s): the set "
                    "holds only the images found so far. Split the folder, or ask the "
                    "administrator to raise VIT_EXPLORER_LISTING_ENTRIES or "
                    "VIT_EXPLORER_LISTING_SECONDS.")
        return not self.stopped


def display_name(path: Path, root: Path) -> str:
    """The path below `root` as printable text: bytes that are not UTF-8 are written as
    escapes (``caf\\xe9.png``), so two such names never share an id."""
    raw = str(path.relative_to(root)).encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


def listing(folder: Path, root: Path, skipped: list[tuple[str, str]], budget: Budget
            ) -> list[Path]:
    """The entries of `folder` within `budget`, sorted; a subfolder that cannot be read is
    listed with the reason and read as empty (the set's own folder raises ValueError)."""
    try:
        found: list[Path] = []
        with os.scandir(folder) as scan:
            for entry in scan:
                if not budget.spend():
                    break
                found.append(Path(entry.path))
        return sorted(found)
    except OSError as err:
        if folder == root:
            raise ValueError(f"Image folder {root} could not be read ({err.strerror or err}); "
                             "check its permissions.") from None
        skipped.append((display_name(folder, root) + "/", f"could not be read "
                        f"({err.strerror or err}); its images were left out"))
        return []


def entries(folder: Path, root: Path, roots: list[Path], skipped: list[tuple[str, str]],
            budget: Budget) -> tuple[list[Path], list[Path]]:
    """The usable regular files and subfolders of `folder`, sorted. Hidden folders and
    files are left out (hidden images listed); an image or labels.csv that is not a
    regular file (a pipe, a device, a broken link), a link loop, or a link that leaves
    `roots` is listed with the reason and never opened."""
    files: list[Path] = []
    folders: list[Path] = []
    for path in listing(folder, root, skipped, budget):
        wanted = is_image_name(path.name) or path.name == LABELS_FILE
        try:
            within = inside(path, roots)
        except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13)
            if wanted:
                skipped.append((display_name(path, root), "a symbolic link that leads back "
                                "to itself (a loop); it was not read"))
            continue
        if path.name.startswith("."):
            if wanted and not path.is_dir():
                skipped.append((display_name(path, root), "a hidden file (its name starts "
                                "with a dot); rename it to use it"))
        elif not within:
            if wanted or path.is_dir():
                skipped.append((display_name(path, root) + ("/" if path.is_dir() else ""),
                                OUTSIDE))
        elif path.is_dir():
            folders.append(path)
        elif path.is_file():
            files.append(path)
        elif wanted:
            skipped.append((display_name(path, root), "not a regular file (a pipe, a device "
                            "or a link to nothing); it was not read"))
    return files, folders
