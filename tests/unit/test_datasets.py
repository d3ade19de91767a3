"""Image sets: the demo, ImageFolder, flat folders with labels.csv, broken files."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from core.data.builtin import demo_dataset
from core.data.datasets import load_dataset
from core.data.inputs import load_batch

NAMES = ["cat", "dog", "Ankle boot"]


def write_image(path, size=(20, 20), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)
                    ).convert(mode).save(path)


def test_demo_set_is_balanced_with_labels():
    ds = demo_dataset()
    labels = np.array([r.label for r in ds.records])
    assert len(ds) == 1000 and np.bincount(labels).tolist() == [100] * 10
    assert ds.pixels.shape == (1000, 28, 28) and ds.pixels.dtype == np.uint8
    assert len({r.id for r in ds.records}) == 1000
    assert ds.content_hash(0) != ds.content_hash(1)


def test_image_folder_layout(tmp_path):
    write_image(tmp_path / "cat" / "a.png")
    write_image(tmp_path / "dog" / "b.jpg")
    write_image(tmp_path / "zebra" / "c.png")
    ds = load_dataset(str(tmp_path), NAMES)
    assert [(r.id, r.label) for r in ds.records] == [("cat/a.png", 0), ("dog/b.jpg", 1),
                                                     ("zebra/c.png", None)]
    # folder names are the set's own classes: a folder that is no model class is kept,
    # grouped by its name and said once; nothing was skipped
    assert ds.classes == ["cat", "dog", "zebra"] and ds.records[2].group == "zebra"
    assert not ds.skipped
    assert len(ds.notes) == 1 and "'zebra'" in ds.notes[0] and "predicted class" in ds.notes[0]


def test_flat_folder_with_labels_csv(tmp_path):
    write_image(tmp_path / "one.png")
    write_image(tmp_path / "two.png")
    write_image(tmp_path / "three.png")
    (tmp_path / "labels.csv").write_text("filename,label\none.png,ankle boot\ntwo.png,1\n"
                                         "three.png,unicorn\nmissing.png,cat\n")
    ds = load_dataset(str(tmp_path), NAMES)
    labels = {r.id: r.label for r in ds.records}
    assert labels == {"one.png": 2, "two.png": 1, "three.png": None}
    reasons = dict(ds.skipped)
    assert "no such image file" in reasons["missing.png"]
    assert "three.png" not in reasons and "'unicorn'" in ds.notes[0]
    assert ds.classes == ["1", "ankle boot", "unicorn"]


def test_flat_folder_without_labels(tmp_path):
    write_image(tmp_path / "x.png")
    (tmp_path / "notes.txt").write_text("ignored")
    ds = load_dataset(str(tmp_path), NAMES)
    assert [(r.id, r.label) for r in ds.records] == [("x.png", None)]


def test_broken_image_is_skipped_and_listed_the_rest_goes_on(tmp_path, demo):
    write_image(tmp_path / "good.png", mode="L")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ds = load_dataset(str(tmp_path), demo.class_names)
    batch, kept, failures = load_batch(demo, ds, list(range(len(ds))))
    assert [ds.records[i].id for i in kept] == ["good.png"]
    assert batch.shape == (1, 1, 28, 28)
    (bad,) = failures
    assert ds.records[bad].id == "broken.png" and failures[bad].kind == "not_an_image"
    assert "could not be read" in failures[bad].message


def test_missing_folder_message():
    import pytest
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset("/no/such/folder", NAMES)


def counting_reads(monkeypatch) -> list[Path]:
    """Every file `Path.read_bytes` reads from now on, in order."""
    reads: list[Path] = []
    real = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return reads


def test_content_and_mask_hashes_read_each_unchanged_file_once(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "masks" / "a.png", mode="L")
    ds = load_dataset(str(tmp_path), NAMES)
    reads = counting_reads(monkeypatch)
    first = ds.content_hash(0), ds.mask_hash(0)
    assert len(reads) == 2
    # a rerun (the same files in a freshly loaded set) reads nothing to hash them
    again = load_dataset(str(tmp_path), NAMES)
    del reads[:]
    assert (again.content_hash(0), again.mask_hash(0)) == first and reads == []


def test_a_changed_file_is_hashed_anew(tmp_path, monkeypatch):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "masks" / "a.png", mode="L")
    ds = load_dataset(str(tmp_path), NAMES)
    image, mask = ds.content_hash(0), ds.mask_hash(0)
    path = tmp_path / "a.png"
    data, stat = path.read_bytes(), path.stat()
    reads = counting_reads(monkeypatch)
    write_image(tmp_path / "masks" / "a.png", size=(24, 24), mode="L")  # another size
    assert ds.mask_hash(0) != mask and len(reads) == 1
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: read again
    assert ds.content_hash(0) == image and len(reads) == 2
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # the same size, other bytes
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert path.stat().st_size == stat.st_size
    assert ds.content_hash(0) != image and len(reads) == 3
