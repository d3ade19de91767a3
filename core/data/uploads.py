"""Images uploaded through the app, kept as an image set on the server.

An upload is image files, an optional ``labels.csv``, and ``.zip`` archives of the
same (flat, or class folders at the top of the archive, and ``masks/``): one archive
is one request, where a browser sending thousands of separate files can lose some.
The files of one upload go into a folder named after their content, and the image
set is then named ``upload:<digest>`` (what the sidebar and a shared link carry;
never a server path). The same files always give the same name, so a shared link
opens the same set on this server for as long as the folder is kept. The folder is
read like any image folder (``core.data.folders``): a ``labels.csv`` among flat
files gives labels, and a file that cannot be decoded is skipped and listed.
Names are made safe for one folder (last path part, no control characters, at
most MAX_NAME_BYTES, repeats that differ only in case numbered), and the rows of an
uploaded ``labels.csv`` follow a file that had to be renamed. What one upload
stores is bounded (MAX_FILES files and archive entries, MAX_FILE_BYTES each unpacked,
MAX_UNPACKED_BYTES in all, across every archive; regular files only), and so is what
all uploads on the server hold (``$VIT_EXPLORER_UPLOADS_MAX_BYTES``: past it new files
are refused); every file or entry left out is listed with the reason. Folders live in
``uploads/`` beside ``app.py``, or in ``$VIT_EXPLORER_UPLOADS``; nothing removes them.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from core.data.layout import IMAGE_SUFFIXES, LABELS_FILE, MASKS_FOLDER, is_image_name

PREFIX = "upload:"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "uploads"
_DIGEST = re.compile(r"[0-9a-f]{16}")
MAX_NAME_BYTES = 200  # below the 255 bytes of common file systems, room for "-2"
MAX_FILES = 20_000  # files kept from one upload (archive entries included)
MAX_FILE_BYTES = 64 * 2**20  # one archive entry, unpacked
MAX_UNPACKED_BYTES = 2**30  # all files and archive entries of one upload, unpacked
DEFAULT_SERVER_BYTES = 20 * 2**30  # $VIT_EXPLORER_UPLOADS_MAX_BYTES: all uploads stored


@dataclass
class Upload:
    """An upload once stored: its image set's name, the files kept, and the files or
    archive entries left out, ``(name, reason)``."""
    images: str
    files: int
    refused: list[tuple[str, str]]


def uploads_root() -> Path:
    return Path(os.environ.get("VIT_EXPLORER_UPLOADS") or DEFAULT_DIR)


def server_bound() -> int:
    """How many bytes all uploads on this server may hold ($VIT_EXPLORER_UPLOADS_MAX_BYTES,
    default 20 GiB)."""
    return int(os.environ.get("VIT_EXPLORER_UPLOADS_MAX_BYTES") or DEFAULT_SERVER_BYTES)


def stored_bytes(root: Path) -> int:
    """The bytes of every file below `root` (the uploads stored, and those arriving)."""
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def safe_file_names(names: Sequence[str]) -> list[str]:
    """Upload file names usable in one folder: the last path part only, control
    characters dropped, repeats numbered (``a.png``, ``a-2.png``)."""
    taken: set[str] = set()
    out = []
    for name in names:
        base = re.sub(r"[\x00-\x1f\x7f]", "", name.replace("\\", "/").split("/")[-1]).strip()
        if base in ("", ".", ".."):
            base = "file"
        stem, dot, suffix = base.rpartition(".")
        stem, suffix = (stem, dot + suffix) if stem else (base, "")
        while len((stem + suffix).encode()) > MAX_NAME_BYTES:
            stem, suffix = (stem[:-1], suffix) if stem else (suffix[:-1], "")
        base = stem + suffix
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{stem}-{n}{suffix}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def renamed_labels(data: bytes, renames: dict[str, str]) -> bytes:
    """labels.csv content whose rows name a renamed file name its new name."""
    new = {old.encode(): name.encode() for old, name in renames.items()}
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        first, comma, rest = line.partition(b",")
        if comma and first.strip() in new:
            lines[i] = new[first.strip()] + comma + rest
    return b"\n".join(lines)


Read = Callable[[], "bytes | None"]  # an entry's content, None once refused


Take = Callable[[int], bool]  # counts `size` bytes against the upload's bound; False: past it


def past_unpacked() -> str:
    return (f"past the {MAX_UNPACKED_BYTES // 2**20} MB that one upload may hold unpacked; "
            "upload the rest separately")


def archive_entries(name: str, data: bytes, refused: list[tuple[str, str]], take: Take
                    ) -> Iterator[tuple[list[str], Read]]:
    """The regular files of zip archive `name` as ``(path parts, read)``, one leading
    folder that holds everything dropped; the checks that need no content are made
    here (stated sizes counted by `take`), the rest when an entry is read. Entries left
    out go to `refused`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as err:
        refused.append((name, f"not a readable .zip archive ({err})"))
        return
    paths = [[p for p in re.split(r"[/\\]", info.filename) if p not in ("", ".")]
             for info in infos]
    while paths and all(len(p) > 1 and p[0] == paths[0][0] for p in paths):
        paths = [p[1:] for p in paths]
    for info, parts in zip(infos, paths):  # read() holds each entry to its stated size
        where = f"{name}: {info.filename}"
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind and kind != stat.S_IFREG:
            refused.append((where, "not a regular file (a link or a device); it was not read"))
        elif ".." in parts:
            refused.append((where, "its path leads outside the archive; it was not read"))
        elif any(p.startswith(".") or p == "__MACOSX" for p in parts):
            refused.append((where, "a hidden or system file (its path has a part starting "
                                   "with a dot, or __MACOSX)"))
        elif info.file_size > MAX_FILE_BYTES:
            refused.append((where, f"larger than {MAX_FILE_BYTES // 2**20} MB unpacked"))
        elif not take(info.file_size):
            refused.append((where, past_unpacked()))
        else:
            yield parts, lambda info=info, where=where: read_entry(archive, info, where, refused)


def read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str,
               refused: list[tuple[str, str]]) -> bytes | None:
    """One archive entry's content, at most its stated size; None (and the reason in
    `refused`) when it cannot be unpacked or unpacks to another size."""
    try:
        with archive.open(info) as entry:
            content = entry.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError,
            EOFError, ValueError) as err:  # damaged, encrypted, unknown method
        refused.append((where, f"could not be unpacked ({err})"))
        return None
    if len(content) != info.file_size:
        refused.append((where, "its unpacked size differs from the size the archive "
                               "states; it was not read"))
        return None
    return content


def upload_entries(files: Sequence[tuple[str, bytes]], refused: list[tuple[str, str]]
                   ) -> Iterator[tuple[list[str], Read]]:
    """Every uploaded file and archive entry as ``(path parts, read)``; a file's parts
    are its name alone. Files and entries of all archives together hold at most
    MAX_UNPACKED_BYTES."""
    unpacked = 0

    def take(size: int) -> bool:
        nonlocal unpacked
        if unpacked + size > MAX_UNPACKED_BYTES:
            return False
        unpacked += size
        return True

    for name, data in files:
        if name.lower().endswith(".zip"):
            yield from archive_entries(name, data, refused, take)
        elif take(len(data)):
            yield [name], lambda data=data: data
        else:
            refused.append((name, past_unpacked()))


def placed(entries: Iterator[tuple[list[str], Read]], refused: list[tuple[str, str]]
           ) -> Iterator[tuple[str, Read]]:
    """Each kept entry's path in the upload's folder: ``file``, or ``folder/file`` for a
    class folder or masks/. Images, labels.csv and masks only; at most MAX_FILES; names
    made safe per folder, repeats numbered, a flat labels.csv following renames.
    Decided on the names alone: nothing is read here."""
    entries = list(entries)
    folder_names = sorted({parts[0] for parts, _ in entries if len(parts) == 2})
    folders = dict(zip(folder_names, safe_file_names(folder_names)))
    classes = any(folders[f].lower() != MASKS_FOLDER for f in folders)
    by_folder: dict[str, list[tuple[str, Read]]] = {}
    kept = 0
    for parts, read in entries:
        shown = "/".join(parts)
        folder = folders[parts[0]] if len(parts) == 2 else ""
        labels = parts[-1].lower() == LABELS_FILE and not folder
        if len(parts) > 2:
            refused.append((shown, "more than one folder deep: put images in class "
                                   "folders at the top of the archive"))
        elif not (is_image_name(parts[-1]) or labels):
            refused.append((shown, "not an image (" + ", ".join(IMAGE_SUFFIXES)
                                   + f") or a top-level {LABELS_FILE}"))
        elif classes and not folder and not labels:
            refused.append((shown, "an image beside class folders belongs to no class: "
                                   "put it in a class folder"))
        elif kept >= MAX_FILES:
            refused.append((shown, f"past the {MAX_FILES:,} files one upload may hold; "
                                   "upload the rest as another set"))
        else:
            kept += 1
            by_folder.setdefault(folder, []).append((parts[-1], read))
    for folder, files in by_folder.items():
        names = safe_file_names([name for name, _ in files])
        renames = {name: new for (name, _), new in zip(files, names) if new != name}
        for new, (_, read) in zip(names, files):
            if new == LABELS_FILE and renames and not folder:
                read = (lambda read=read: None if (data := read()) is None
                        else renamed_labels(data, renames))
            yield (f"{folder}/{new}" if folder else new), read


def save_uploads(files: Sequence[tuple[str, bytes]]) -> Upload:
    """Store uploaded ``(file name, content)`` pairs (zip archives unpacked); returns
    the image set's name, ``upload:<digest>``, with the count of files kept and what
    was left out. Raises OSError when the uploads folder cannot be written."""
    refused: list[tuple[str, str]] = []
    root = uploads_root()
    root.mkdir(parents=True, exist_ok=True)
    room = server_bound() - stored_bytes(root)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".incoming-"))
    try:
        hashes = []
        for path, read in placed(upload_entries(files, refused), refused):
            data = read()
            if data is None:
                continue
            if len(data) > room:
                refused.append((path, f"the server's upload storage is full (it holds at "
                                f"most {server_bound() // 2**20:,} MB); ask the administrator "
                                "to free space or raise VIT_EXPLORER_UPLOADS_MAX_BYTES"))
                continue
            room -= len(data)
            (staging / path).parent.mkdir(exist_ok=True)
            (staging / path).write_bytes(data)
            hashes.append((path, hashlib.sha256(data).digest()))
        digest = hashlib.sha256()
        for path, content in sorted(hashes):
            digest.update(path.encode() + b"\0" + content)
        folder = root / digest.hexdigest()[:16]
        try:
            staging.rename(folder)
        except OSError:
            if not folder.is_dir():  # another session may have stored the same files
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Upload(PREFIX + folder.name, len(hashes), refused)


def upload_folder(spec: str) -> Path:
    """The folder of image set ``upload:<digest>`` (ValueError when there is none)."""
    key = spec[len(PREFIX):]
    folder = uploads_root() / key
    if not _DIGEST.fullmatch(key) or not folder.is_dir():
        raise ValueError(f"The uploaded image set {spec!r} is not on this server (uploads "
                         "are kept per server); upload the images again.")
    return folder
