"""Hostile image bytes, round two: a PNG whose EXIF chunk holds only the TIFF header,
and a few hundred PNG, JPEG, WebP, TIFF and GIF files truncated or bit-flipped at
random offsets (fixed seed). The folder reader, load_batch and the batch command list
each broken file with its reason and keep every good one; no exception escapes."""
from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms
from streamlit.testing.v1 import AppTest

from core import precompute
from core.analyses.forward import FORWARD
from core.data.datasets import load_dataset
from core.data.decode import ImageDecodeError, decode_image
from core.data.inputs import load_batch
from testing.images import demo_flat_folder

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "GIF")
PER_FORMAT = 60  # 300 hostile files in all


def with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """`png` with one more chunk before its first IDAT."""
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (28, 28), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def bad_exif_png() -> bytes:
    """A valid PNG whose eXIf chunk holds only the 4-byte TIFF header."""
    return with_chunk(png_bytes(), b"eXIf", b"II*\0")


def rich(fmt: str) -> bytes:
    """A small image in `fmt` with the metadata a camera or editor writes: EXIF with an
    orientation, an ICC profile (where the format has one), a text chunk (PNG)."""
    image = Image.radial_gradient("L").resize((32, 24)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    if fmt == "GIF":
        image.convert("P").save(out, format="GIF", comment=b"hostile")
    elif fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo
        text = PngInfo()
        text.add_text("Comment", "hostile")
        text.add_itxt("Title", "\u00e9" * 20, zip=True)
        image.save(out, format="PNG", exif=exif, icc_profile=icc, pnginfo=text)
    else:
        image.save(out, format=fmt, exif=exif, icc_profile=icc)
    return out.getvalue()


def damaged(data: bytes, rng: random.Random) -> bytes:
    """`data` cut at a random offset, or with 1 to 8 random bits flipped."""
    if rng.random() < 0.4:
        return data[:rng.randrange(1, len(data))]
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Path:
    """A flat folder: good_a.png, good_b.png and 300 damaged files."""
    folder = tmp_path_factory.mktemp("fuzz") / "imgs"
    folder.mkdir()
    (folder / "good_a.png").write_bytes(png_bytes())
    (folder / "good_b.png").write_bytes(rich("PNG"))
    rng = random.Random(29)
    for fmt in FORMATS:
        source = rich(fmt)
        for n in range(PER_FORMAT):
            (folder / f"f{n:02d}.{fmt.lower()}").write_bytes(damaged(source, rng))
    (folder / "exif.png").write_bytes(bad_exif_png())
    return folder


def test_a_png_with_a_truncated_exif_chunk_is_refused_with_the_reason():
    with pytest.raises(ImageDecodeError, match="truncated or corrupt"):
        decode_image(bad_exif_png(), "RGB")


def test_every_rich_source_image_decodes():
    for fmt in FORMATS:
        assert decode_image(rich(fmt), "RGB").size in ((32, 24), (24, 32)), fmt


def test_the_folder_reader_and_load_batch_keep_every_good_file(fuzzed, demo):
    ds = load_dataset(str(fuzzed), demo.class_names)
    assert len(ds) == 2 + 1 + len(FORMATS) * PER_FORMAT
    _, kept, failures = load_batch(demo, ds, list(range(len(ds))))
    ids = {ds.records[i].id for i in kept}
    assert {"good_a.png", "good_b.png"} <= ids
    assert sorted(kept + list(failures)) == list(range(len(ds)))
    assert ds.records[ds.index_of("exif.png")] and ds.index_of("exif.png") in failures
    assert len(failures) > 100  # most damaged files are refused, each with its reason
    assert all(f.kind == "not_an_image" and f.message for f in failures.values())


def test_the_batch_command_skips_each_damaged_file_and_exits_0(fuzzed, tmp_path,
                                                              monkeypatch, capsys):
    monkeypatch.setattr(precompute, "ANALYSES", {"forward": FORWARD})
    monkeypatch.setattr(precompute, "DATASET_STEPS", {})
    code = precompute.main(["--model", "demo", "--images", str(fuzzed), "--cache",
                            str(tmp_path / "cache"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert "skipped exif.png: could not be read as an image" in out
    done = int(out.rsplit("precompute: ", 1)[1].split()[0])
    skipped = sum(line.startswith("skipped ") for line in out.splitlines())
    assert done + skipped == 2 + 1 + len(FORMATS) * PER_FORMAT and done >= 2


def test_the_page_of_the_broken_exif_file_says_why_and_keeps_the_others(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    folder = demo_flat_folder(tmp_path, count=2, broken=False)
    (folder / "exif.png").write_bytes(bad_exif_png())
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params.update({"images": str(folder), "image": "exif.png"})
    at.run()
    assert not at.exception, at.exception
    shown = " ".join(e.value for e in at.error)
    assert "exif.png could not be used" in shown and "truncated or corrupt" in shown, shown
    assert "3 images" in " ".join(c.value for c in at.sidebar.caption)
