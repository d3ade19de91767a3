"""Bad input: each case gets a clear message and the rest of the work goes on."""
from __future__ import annotations

import re

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import precompute
from core.data.datasets import load_dataset
from core.data.inputs import load_batch
from core.data.decode import ImageDecodeError, decode_image
from core.analyses.forward import FORWARD
from core.engine import run
from core.storage.cache import ArrayCache


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


def gradient(size=(24, 24)) -> np.ndarray:
    return np.tile(np.linspace(0, 255, size[1], dtype=np.uint8), (size[0], 1))


GOOD = png_bytes(Image.fromarray(gradient()))
CORRUPT = GOOD[:45] + b"\xff" * (len(GOOD) - 65) + GOOD[-20:]  # compressed data overwritten


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (GOOD[: len(GOOD) // 2], "truncated or corrupt"),
    (CORRUPT, "truncated or corrupt"),
    (b"name,label\nthis is a csv, not a picture\n", "not an image"),
])
def test_broken_files_raise_a_clear_error(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(data, "RGB")


def test_cmyk_palette_rgba_gray_and_tiny_images_decode():
    rgb = Image.fromarray(np.stack([gradient()] * 3, axis=-1))
    cases = {
        "CMYK": png_bytes(rgb.convert("CMYK"), "JPEG"),
        "P": png_bytes(rgb.convert("P")),
        "L": png_bytes(rgb.convert("L")),
        "1": png_bytes(rgb.convert("1")),
        "1x1": png_bytes(Image.new("RGB", (1, 1), (10, 20, 30))),
    }
    for name, data in cases.items():
        for mode in ("RGB", "L"):
            img = decode_image(data, mode)
            assert img.mode == mode and img.size in ((24, 24), (1, 1)), name


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    img = np.asarray(decode_image(png_bytes(rgba), "RGB"))
    assert tuple(img[0, 0]) == (255, 0, 0) and tuple(img[3, 3]) == (255, 255, 255)


def test_16_bit_images_are_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = png_bytes(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    img = np.asarray(decode_image(data, "L"))
    assert img.tolist() == [[0, 128, 255]]


def test_images_above_the_pixel_limit_are_refused(monkeypatch):
    import core.data.decode
    monkeypatch.setattr(core.data.decode, "MAX_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="safety limit"):
        decode_image(GOOD, "RGB")


def test_pillow_decompression_bomb_error_is_caught(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 24x24 > 2 x 10: Pillow raises
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(GOOD, "RGB", max_pixels=10**9)


@pytest.fixture
def messy_folder(tmp_path) -> Path:
    folder = tmp_path / "messy"
    folder.mkdir()
    rgb = Image.fromarray(np.stack([gradient()] * 3, axis=-1))
    (folder / "good.png").write_bytes(GOOD)
    (folder / "cmyk.jpg").write_bytes(png_bytes(rgb.convert("CMYK"), "JPEG"))
    (folder / "rgba.png").write_bytes(png_bytes(rgb.convert("RGBA")))
    (folder / "sixteen.png").write_bytes(png_bytes(Image.fromarray(
        (gradient().astype(np.uint16) * 257))))
    (folder / "tiny.png").write_bytes(png_bytes(Image.new("L", (1, 1), 128)))
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(GOOD[: len(GOOD) // 2])
    (folder / "text.jpg").write_text("not an image")
    (folder / "locked.png").write_bytes(GOOD)
    os.chmod(folder / "locked.png", 0)
    for name in (b"caf\xe9.png", b"caf\xe8.png"):  # Latin-1 names, not UTF-8
        with open(os.path.join(os.fsencode(folder), name), "wb") as f:
            f.write(GOOD)
    (folder / "labels.csv").write_text("filename,label\ngood.png,Trouser\nghost.png,Bag\n"
                                       "tiny.png,spaceship\n")
    return folder


def deny_locked_file(monkeypatch):
    """Tests run as root in CI, where mode 000 does not stop reading: make the read
    of locked.png fail as it does for an ordinary user."""
    original = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_messy_folder_keeps_the_good_images_and_lists_the_rest(messy_folder, demo,
                                                               monkeypatch):
    deny_locked_file(monkeypatch)
    ds = load_dataset(str(messy_folder), demo.class_names)
    reasons = dict(ds.skipped)
    assert "no such image file" in reasons["ghost.png"]
    assert "tiny.png" not in reasons and "'spaceship'" in " ".join(ds.notes)
    assert {"caf\\xe9.png", "caf\\xe8.png"} <= {r.id for r in ds.records}
    batch, kept, failures = load_batch(demo, ds, list(range(len(ds))))
    kept_ids = {ds.records[i].id for i in kept}
    assert kept_ids == {"good.png", "cmyk.jpg", "rgba.png", "sixteen.png", "tiny.png",
                        "caf\\xe9.png", "caf\\xe8.png"}
    assert batch.shape == (7, 1, 28, 28)
    why = {ds.records[i].id: str(f) for i, f in failures.items()}
    assert "empty" in why["empty.png"]
    assert "truncated or corrupt" in why["truncated.png"]
    assert "not an image" in why["text.jpg"]
    assert "Permission denied" in why["locked.png"]


def test_files_that_are_not_images_are_listed_again_not_counted_as_missing_work(
        messy_folder, demo, monkeypatch, tmp_path):
    deny_locked_file(monkeypatch)
    ds = load_dataset(str(messy_folder), demo.class_names)
    everything = list(range(len(ds)))
    cache = ArrayCache(tmp_path / "cache")
    first = run(demo, ds, everything, FORWARD, cache=cache)
    known = run(demo, ds, everything, FORWARD, cache=cache, compute=False)
    assert known.missing == []  # a page shows the set without asking to compute again
    assert sorted(known.arrays) == sorted(first.arrays) and known.from_cache == 7
    assert dict(known.skipped) == dict(first.skipped)  # the same four files, same reasons
    assert {"empty.png", "truncated.png", "text.jpg", "locked.png"} == set(dict(known.skipped))


@pytest.mark.slow
def test_batch_command_goes_on_and_summarises_what_it_skipped(messy_folder, tmp_path,
                                                              monkeypatch, capsys):
    deny_locked_file(monkeypatch)
    code = precompute.main(["--model", "demo", "--images", str(messy_folder),
                            "--cache", str(tmp_path / "cache"), "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert lines[-1].startswith("precompute: 7 images done, 5 skipped")
    skipped = "\n".join(lines[:-1])
    for name in ("empty.png", "truncated.png", "text.jpg", "locked.png", "ghost.png"):
        assert f"skipped {name}:" in skipped
    assert "note: 1 label(s) in labels.csv not among the model's classes ('spaceship')" in skipped


def test_unwritable_cache_makes_the_batch_command_exit_1_and_say_so(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setattr(precompute, "ANALYSES", {"forward": FORWARD})  # 1,000 images: the fast analysis
    monkeypatch.setattr(precompute, "DATASET_STEPS", {})
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = precompute.main(["--model", "demo", "--images", "demo", "--cache",
                            str(blocker / "cache"), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1  # README: exit 1 when results cannot be stored
    assert "nothing can be stored" in captured.err and str(blocker) in captured.err
    assert "images done" not in captured.out  # nothing computed for nothing


@pytest.mark.parametrize("image_id", ["empty.png", "truncated.png", "text.jpg", "good.png"])
def test_the_app_shows_a_message_for_a_broken_image_and_keeps_running(messy_folder, tmp_path,
                                                                      monkeypatch, image_id):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    app = str(Path(__file__).resolve().parents[2] / "app.py")
    at = AppTest.from_file(app, default_timeout=300)
    at.query_params.update({"images": str(messy_folder), "image": image_id})
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="w_image").value == image_id  # the broken one stays selectable
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in at.error]  # as displayed
    if image_id == "good.png":
        assert not errors
        assert any(c.startswith("Image good.png") for img in at.get("image") for c in img.captions)
    else:
        assert any(f"Image {image_id} could not be used" in e for e in errors), errors
