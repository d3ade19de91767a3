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


def listing(folder: Path, root: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """The entries of `folder`, sorted; a subfolder that cannot be read is listed with
    the reason and read as empty (the set's own folder raises ValueError)."""
    try:
        return sorted(folder.iterdir())
    except OSError as err:
        if folder == root:
            raise ValueError(f"Image folder {root} could not be read ({err.strerror or err}); "
                             "check its permissions.") from None
        skipped.append((display_name(folder, root) + "/", f"could not be read "
                        f"({err.strerror or err}); its images were left out"))
        return []


def entries(folder: Path, root: Path, roots: list[Path], skipped: list[tuple[str, str]]
            ) -> tuple[list[Path], list[Path]]:
    """The usable regular files and subfolders of `folder`, sorted. Hidden folders and
    files are left out (hidden images listed); an image or labels.csv that is not a
    regular file (a pipe, a device, a broken link), a link loop, or a link that leaves
    `roots` is listed with the reason and never opened."""
    files: list[Path] = []
    folders: list[Path] = []
    for path in listing(folder, root, skipped):
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
