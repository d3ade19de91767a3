"""Reading a flat folder's ``labels.csv`` (``filename,label``), bounded: at most
MAX_LABEL_BYTES and MAX_LABEL_ROWS rows, row by row, a bad row listed and skipped."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from core.data.layout import LABELS_FILE

MAX_LABEL_ROWS = 100_000  # rows of labels.csv read; the rest is refused with a message
MAX_LABEL_BYTES = 16 * 2**20


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
