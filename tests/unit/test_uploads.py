"""Uploaded images become a content-named image set (core.data.uploads)."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.data import uploads
from core.data.datasets import load_dataset
from core.data.inputs import load_batch


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
    upload = uploads.save_uploads(files)
    spec = upload.images
    assert spec.startswith("upload:") and upload.files == 2 and not upload.refused
    assert uploads.save_uploads(list(reversed(files))).images == spec
    assert uploads.save_uploads([("shirt.png", png(11)), ("boot.png", png(200))]).images != spec
    assert sorted(p.name for p in uploads.upload_folder(spec).iterdir()) == [
        "boot.png", "shirt.png"]
    assert not [p for p in uploads_root.iterdir() if p.name.startswith(".incoming")]


def test_an_uploaded_set_loads_with_labels_and_keeps_going_past_a_broken_file(demo):
    spec = uploads.save_uploads([
        ("shirt.png", png(10)), ("broken.png", b"not a png"),
        ("labels.csv", b"filename,label\nshirt.png,Shirt\n")]).images
    ds = load_dataset(spec, demo.class_names)
    assert ds.name == spec and [r.id for r in ds.records] == ["broken.png", "shirt.png"]
    assert ds.records[1].label == demo.class_names.index("Shirt")
    assert ds.records[0].label is None
    x, kept, failures = load_batch(demo, ds, [0, 1])
    assert kept == [1] and x.shape[0] == 1
    assert list(failures) == [0] and ds.records[0].id == "broken.png"
    assert "could not" in failures[0].message.lower()


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


def archive(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_a_zip_of_class_folders_in_one_top_folder_becomes_a_class_folder_set(demo):
    upload = uploads.save_uploads([("set.zip", archive({
        "set/Bag/a.png": png(1), "set/Bag/b.png": png(2), "set/Coat/a.png": png(3),
        "set/masks/a.png": png(255), "set/readme.txt": b"hello"}))])
    assert upload.files == 4
    assert upload.refused == [("readme.txt", "not an image (.png, .jpg, .jpeg, .bmp, .gif, "
                                             ".webp, .tif, .tiff, .ppm) or a top-level "
                                             "labels.csv")]
    ds = load_dataset(upload.images, demo.class_names)
    assert [(r.id, demo.class_names[r.label]) for r in ds.records] == [
        ("Bag/a.png", "Bag"), ("Bag/b.png", "Bag"), ("Coat/a.png", "Coat")]


def test_a_flat_zip_with_labels_and_loose_files_make_one_set_the_same_as_the_files(demo):
    files = {"a.png": png(1), "b.png": png(2), "labels.csv": b"a.png,Bag\n"}
    zipped = uploads.save_uploads([("part.zip", archive({"a.png": png(1), "labels.csv":
                                                         b"a.png,Bag\n"})), ("b.png", png(2))])
    assert zipped.images == uploads.save_uploads(list(files.items())).images
    ds = load_dataset(zipped.images, demo.class_names)
    assert [(r.id, r.label) for r in ds.records] == [
        ("a.png", demo.class_names.index("Bag")), ("b.png", None)]
