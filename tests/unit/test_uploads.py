"""Uploaded images become a content-named image set (core.data.uploads)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.data import uploads
from core.data.datasets import load_batch, load_dataset


def png(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((28, 28), value, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def uploads_root(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_UPLOADS", str(tmp_path / "uploads"))
    return tmp_path / "uploads"


def test_file_names_lose_folders_and_control_characters_and_repeats_are_numbered():
    names = ["../../etc/passwd", "a.png", "A.png", "dir\\b.png", "bad\x00\n.png", "..", ""]
    assert uploads.safe_file_names(names) == [
        "passwd", "a.png", "A-2.png", "b.png", "bad.png", "file", "file-2"]


def test_the_same_files_give_the_same_set_and_other_files_another(uploads_root):
    files = [("shirt.png", png(10)), ("boot.png", png(200))]
    spec = uploads.save_uploads(files)
    assert spec.startswith("upload:")
    assert uploads.save_uploads(list(reversed(files))) == spec
    assert uploads.save_uploads([("shirt.png", png(11)), ("boot.png", png(200))]) != spec
    assert sorted(p.name for p in uploads.upload_folder(spec).iterdir()) == [
        "boot.png", "shirt.png"]
    assert not [p for p in uploads_root.iterdir() if p.name.startswith(".incoming")]


def test_an_uploaded_set_loads_with_labels_and_keeps_going_past_a_broken_file(demo):
    spec = uploads.save_uploads([
        ("shirt.png", png(10)), ("broken.png", b"not a png"),
        ("labels.csv", b"filename,label\nshirt.png,Shirt\n")])
    ds = load_dataset(spec, demo.class_names)
    assert ds.name == spec and [r.id for r in ds.records] == ["broken.png", "shirt.png"]
    assert ds.records[1].label == demo.class_names.index("Shirt")
    assert ds.records[0].label is None
    x, kept, failures = load_batch(demo, ds, [0, 1])
    assert kept == [1] and x.shape[0] == 1
    assert failures[0][0] == "broken.png" and "could not" in failures[0][1].lower()


@pytest.mark.parametrize("spec", ["upload:0123456789abcdef", "upload:../../etc",
                                  "upload:"])
def test_an_unknown_or_malformed_upload_name_is_refused_with_what_to_do(spec):
    with pytest.raises(ValueError, match="upload the images again"):
        load_dataset(spec, ["a"])


def test_an_unwritable_uploads_folder_raises_oserror(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VIT_EXPLORER_UPLOADS", str(blocker / "uploads"))
    with pytest.raises(OSError):
        uploads.save_uploads([("a.png", png(1))])
