"""Hostile image folders: links out of the data roots, FIFOs, hidden folders and files,
and labels.csv files built to break the reader. Each bad file or row is listed with
its reason; the rest of the set is kept."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from core.data.datasets import load_dataset
from core.data.decode import decode_image
from core.data.folders import folder_dataset
from testing.images import demo_flat_folder

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]


def flat(tmp_path: Path, count: int = 2) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return demo_flat_folder(tmp_path, count=count, broken=False)


def test_a_symlinked_file_that_leaves_the_roots_is_listed_not_read(tmp_path, monkeypatch):
    folder = flat(tmp_path / "data")
    outside = flat(tmp_path / "outside", 1) / "img0.png"
    os.symlink(outside, folder / "escape.png")
    monkeypatch.setenv("VIT_EXPLORER_DATA_ROOTS", str(tmp_path / "data"))
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert "outside the folders" in dict(ds.skipped)["escape.png"]


def test_a_symlinked_class_folder_that_leaves_the_roots_is_listed_not_read(tmp_path,
                                                                            monkeypatch):
    root = tmp_path / "data" / "imgs"
    (root / "Bag").mkdir(parents=True)
    Image.new("L", (28, 28), 5).save(root / "Bag" / "a.png")
    outside = flat(tmp_path / "outside", 1)
    os.symlink(outside, root / "Coat")
    monkeypatch.setenv("VIT_EXPLORER_DATA_ROOTS", str(tmp_path / "data"))
    ds = load_dataset(str(root), CLASSES)
    assert [r.id for r in ds.records] == ["Bag/a.png"]
    assert "outside the folders" in dict(ds.skipped)["Coat/"]


def test_a_labels_csv_linked_outside_the_roots_is_not_read(tmp_path, monkeypatch):
    folder = flat(tmp_path / "data")
    secret = tmp_path / "secret.csv"
    secret.write_text("img0.png,Bag\nsecret-row,password\n")
    os.symlink(secret, folder / "labels.csv")
    monkeypatch.setenv("VIT_EXPLORER_DATA_ROOTS", str(tmp_path / "data"))
    ds = load_dataset(str(folder), CLASSES)
    assert all(r.label is None for r in ds.records)
    assert "secret-row" not in str(ds.skipped)
    assert "outside the folders" in dict(ds.skipped)["labels.csv"]


def test_a_fifo_named_like_an_image_is_listed_and_never_opened(tmp_path):
    folder = flat(tmp_path)
    os.mkfifo(folder / "x.png")  # reading it would block for ever
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert "not a regular file" in dict(ds.skipped)["x.png"]


def test_a_hidden_folder_does_not_hide_the_flat_images(tmp_path):
    folder = flat(tmp_path)
    (folder / ".thumbnails").mkdir()
    Image.new("L", (8, 8)).save(folder / ".thumbnails" / "img0.png")
    (folder / "labels.csv").write_text("img0.png,Bag\n")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert ds.records[0].label == CLASSES.index("Bag")


def test_a_file_named_dot_png_is_listed_with_its_reason(tmp_path):
    folder = flat(tmp_path)
    Image.new("L", (8, 8)).save(folder / ".png", format="PNG")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert "hidden" in dict(ds.skipped)[".png"]


def test_a_superscript_digit_label_is_one_bad_row_not_a_refused_set(tmp_path):
    folder = flat(tmp_path)
    (folder / "labels.csv").write_text("img0.png,\u00b2\nimg1.png,Bag\n", encoding="utf-8")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.label for r in ds.records] == [None, CLASSES.index("Bag")]
    # the set's own class: kept, grouped by it, and said once (issue 15)
    assert ds.records[0].group == "\u00b2" and "\u00b2" in " ".join(ds.notes)


def test_a_latin1_labels_csv_keeps_its_labels(tmp_path):
    folder = flat(tmp_path)
    os.rename(folder / "img1.png", folder / "caf\u00e9.png")
    (folder / "labels.csv").write_bytes("img0.png,Bag\ncaf\u00e9.png,Coat\n".encode("latin-1"))
    ds = load_dataset(str(folder), CLASSES)
    labels = {r.id: r.label for r in ds.records}
    assert labels == {"img0.png": CLASSES.index("Bag"), "caf\u00e9.png": CLASSES.index("Coat")}


def test_a_huge_field_is_one_bad_row(tmp_path):
    folder = flat(tmp_path)
    (folder / "labels.csv").write_text("img0.png,Bag\n" + "x" * 200_000 + ",Coat\n"
                                       "img1.png,Coat\n")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.label for r in ds.records] == [CLASSES.index("Bag"), CLASSES.index("Coat")]
    assert any("row 2" in name and "could not be read" in why for name, why in ds.skipped)


def test_a_million_row_labels_csv_is_bounded_and_says_so(tmp_path):
    folder = flat(tmp_path)
    rows = "".join(f"ghost{i}.png,Bag\n" for i in range(1_000_000))
    (folder / "labels.csv").write_text("img0.png,Coat\n" + rows)
    begin = time.perf_counter()
    ds = load_dataset(str(folder), CLASSES)
    took = time.perf_counter() - begin
    assert ds.records[0].label == CLASSES.index("Coat")
    assert len(ds.skipped) < 1_000_000
    from core.data.labels_csv import MAX_LABEL_ROWS
    assert len(ds.skipped) <= MAX_LABEL_ROWS + 1
    assert any("only the first" in why for _, why in ds.skipped)
    assert took < 20, took  # generous bound: it read a bounded number of rows


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("L", (20, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": the photo is stored sideways
    path = tmp_path / "photo.jpg"
    wide.save(path, exif=exif.tobytes())
    assert decode_image(path.read_bytes(), "L").size == (10, 20)


def test_a_link_loop_is_listed_and_the_good_images_kept(tmp_path):
    folder = flat(tmp_path)
    os.symlink(folder / "loop_b.png", folder / "loop_a.png")
    os.symlink(folder / "loop_a.png", folder / "loop_b.png")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert all("loop" in dict(ds.skipped)[name] for name in ("loop_a.png", "loop_b.png"))


def test_a_dangling_link_is_listed_and_the_good_images_kept(tmp_path):
    folder = flat(tmp_path)
    os.symlink(tmp_path / "gone.png", folder / "dangling.png")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert "link to nothing" in dict(ds.skipped)["dangling.png"]


def test_an_unreadable_class_folder_is_listed_and_the_others_kept(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("Bag", "Coat"):
        flat(tmp_path / name).rename(folder / name)
    original = os.scandir

    def scandir(path):
        if Path(path).name == "Coat":  # as a folder without read permission (tests run as root)
            raise PermissionError(13, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(os, "scandir", scandir)
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["Bag/img0.png", "Bag/img1.png"]
    assert "Permission denied" in dict(ds.skipped)["Coat/"]


def test_an_empty_subfolder_does_not_hide_the_flat_images(tmp_path):
    folder = flat(tmp_path)
    (folder / "empty").mkdir()
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["img0.png", "img1.png"]
    assert "without images" in dict(ds.skipped)["empty/"]


def test_an_image_beside_class_folders_is_listed(tmp_path):
    folder = flat(tmp_path)
    (folder / "Bag").mkdir()
    (folder / "img0.png").rename(folder / "Bag" / "img0.png")
    ds = load_dataset(str(folder), CLASSES)
    assert [r.id for r in ds.records] == ["Bag/img0.png"]
    assert "belongs to no class" in dict(ds.skipped)["img1.png"]


def test_the_batch_command_and_the_page_list_a_link_loop(tmp_path, monkeypatch, capsys):
    from streamlit.testing.v1 import AppTest

    from core import precompute
    from core.analyses.forward import FORWARD
    folder = flat(tmp_path)
    os.symlink(folder / "loop_b.png", folder / "loop_a.png")
    os.symlink(folder / "loop_a.png", folder / "loop_b.png")
    monkeypatch.setattr(precompute, "ANALYSES", {"forward": FORWARD})
    monkeypatch.setattr(precompute, "DATASET_STEPS", {})
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    assert precompute.main(["--model", "demo", "--images", str(folder), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "skipped loop_a.png: a symbolic link" in out and "precompute: 2 images done" in out
    at = AppTest.from_file(str(Path(__file__).parents[2] / "app.py"), default_timeout=300)
    at.query_params.update({"images": str(folder)})
    at.run()
    assert not at.exception, at.exception
    assert "2 file(s) skipped" in [e.label for e in at.sidebar.expander]


def test_a_folder_past_the_listing_bound_keeps_what_was_found_and_says_so(tmp_path,
                                                                          monkeypatch):
    # the probe: a folder of 100,000 empty .png files never rendered in 180 s; the walk
    # is now bounded in entries and in time, with a note saying what was cut
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(120):
        (folder / f"e{i:03d}.png").write_bytes(b"")
    monkeypatch.setenv("VIT_EXPLORER_LISTING_ENTRIES", "50")
    ds = folder_dataset(folder, [], [tmp_path])
    assert len(ds) == 50
    assert any("Reading the folder stopped after 50 entries" in n for n in ds.notes), ds.notes
    monkeypatch.delenv("VIT_EXPLORER_LISTING_ENTRIES")
    assert len(folder_dataset(folder, [], [tmp_path])) == 120  # within the bound: all


def test_a_slow_folder_walk_stops_at_its_time_bound(tmp_path, monkeypatch):
    from core.data import walk
    folder = tmp_path / "slow"
    for label in ("a", "b", "c"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / label / f"{i}.png")
    clock = iter(range(100))  # each entry read takes a second of this clock
    monkeypatch.setattr(walk.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setenv("VIT_EXPLORER_LISTING_SECONDS", "6")
    ds = folder_dataset(folder, [], [tmp_path])
    assert 0 < len(ds) < 9
    assert any("(the bounds: 500,000 entries, 6 s)" in n for n in ds.notes), ds.notes
    assert not [s for s in ds.skipped if "without images" in s[1]]  # not read, not empty
