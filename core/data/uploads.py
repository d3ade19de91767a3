"""Images uploaded through the app, kept as an image set on the server.

The files of one upload go into a folder named after their content, and the image
set is then named ``upload:<digest>`` (what the sidebar and a shared link carry;
never a server path). The same files always give the same name, so a shared link
opens the same set on this server for as long as the folder is kept. The folder is
read like any flat image folder (``core.data.datasets``): a ``labels.csv`` among the
files gives labels, and a file that cannot be decoded is skipped and listed.
Names are made safe for one folder (last path part, no control characters, at
most MAX_NAME_BYTES, repeats that differ only in case numbered), and the rows of an
uploaded ``labels.csv`` follow a file that had to be renamed.
Folders live in ``uploads/`` beside ``app.py``, or in ``$VIT_EXPLORER_UPLOADS``;
nothing removes them.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

PREFIX = "upload:"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "uploads"
_DIGEST = re.compile(r"[0-9a-f]{16}")
MAX_NAME_BYTES = 200  # below the 255 bytes of common file systems, room for "-2"
LABELS = "labels.csv"


def uploads_root() -> Path:
    return Path(os.environ.get("VIT_EXPLORER_UPLOADS") or DEFAULT_DIR)


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


def save_uploads(files: Sequence[tuple[str, bytes]]) -> str:
    """Store uploaded ``(file name, content)`` pairs; returns the image set's name,
    ``upload:<digest>``. Raises OSError when the uploads folder cannot be written."""
    names = safe_file_names([name for name, _ in files])
    renames = {name: new for (name, _), new in zip(files, names) if new != name}
    if renames and LABELS in names:
        at = names.index(LABELS)
        files = [*files[:at], (LABELS, renamed_labels(files[at][1], renames)),
                 *files[at + 1:]]
    digest = hashlib.sha256()
    for name, (_, data) in sorted(zip(names, files)):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    key = digest.hexdigest()[:16]
    folder = uploads_root() / key
    if not folder.is_dir():
        uploads_root().mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=uploads_root(), prefix=".incoming-"))
        try:
            for name, (_, data) in zip(names, files):
                (staging / name).write_bytes(data)
            staging.rename(folder)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not folder.is_dir():  # another session may have stored the same files
                raise
    return PREFIX + key


def upload_folder(spec: str) -> Path:
    """The folder of image set ``upload:<digest>`` (ValueError when there is none)."""
    key = spec[len(PREFIX):]
    folder = uploads_root() / key
    if not _DIGEST.fullmatch(key) or not folder.is_dir():
        raise ValueError(f"The uploaded image set {spec!r} is not on this server (uploads "
                         "are kept per server); upload the images again.")
    return folder
