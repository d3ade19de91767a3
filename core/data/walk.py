"""Walking an image folder one entry at a time, by the link rules: hidden entries are
left out, only regular files are read (never a pipe or a device), and nothing whose
link leads out of the allowed folders (``core.data.paths``)."""
from __future__ import annotations

from pathlib import Path

from core.data.layout import LABELS_FILE, is_image_name
from core.data.paths import inside

OUTSIDE = "its link leads outside the folders this server may read; it was not read"


def display_name(path: Path, root: Path) -> str:
    """The path below `root` as printable text: bytes that are not UTF-8 are written as
    escapes (``caf\\xe9.png``), so two such names never share an id."""
    raw = str(path.relative_to(root)).encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace")


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
