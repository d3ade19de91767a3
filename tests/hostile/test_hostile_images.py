"""Hostile images: tiny files that would need gigabytes once resized, memory errors,
and the batch command's peak memory on a folder of hostile files against the same
folder without them."""
from __future__ import annotations

import dataclasses
import io
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from core.data.datasets import load_dataset
from core.data.inputs import load_batch
from core.data.decode import ImageDecodeError, decode_image
from testing.images import demo_flat_folder

ROOT = Path(__file__).resolve().parents[2]
MEMORY_MARGIN_MB = 300  # the hostile run's peak may exceed the clean run's by this much
ADDRESS_SPACE_CAP = 12 * 2**30  # keeps a runaway subprocess from taking the machine


def thin_png(length: int, mode: str = "RGB") -> bytes:
    """A 1 x `length` image: a few kB of PNG, gigabytes once scaled to a model's input."""
    out = io.BytesIO()
    Image.new(mode, (length, 1), 0).save(out, format="PNG")
    return out.getvalue()


def test_an_extreme_aspect_ratio_is_refused_before_decoding():
    data = thin_png(3_000_000)
    assert len(data) < 20_000
    begin = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="3000000 x 1 pixels.*crop it"):
        decode_image(data, "RGB")
    assert time.perf_counter() - begin < 2


def test_a_thin_image_is_skipped_and_the_good_ones_kept(tmp_path, demo):
    folder = demo_flat_folder(tmp_path, count=2, broken=False)
    (folder / "thin.png").write_bytes(thin_png(3_000_000))
    ds = load_dataset(str(folder), demo.class_names)
    begin = time.perf_counter()
    batch, kept, failures = load_batch(demo, ds, list(range(len(ds))))
    assert time.perf_counter() - begin < 5
    assert [ds.records[i].id for i in kept] == ["img0.png", "img1.png"]
    (bad,) = failures
    assert ds.records[bad].id == "thin.png" and "crop it" in failures[bad].message


def test_a_memory_error_while_preparing_one_image_skips_only_that_image(tmp_path, demo):
    folder = demo_flat_folder(tmp_path, count=3, broken=False)
    ds = load_dataset(str(folder), demo.class_names)
    calls = []

    def transform(img):
        calls.append(img)
        if len(calls) == 2:
            raise MemoryError()
        return demo.transform(img)

    lm = dataclasses.replace(demo, transform=transform)
    batch, kept, failures = load_batch(lm, ds, [0, 1, 2])
    assert kept == [0, 2] and batch.shape[0] == 2
    assert list(failures) == [1] and failures[1].kind == "too_large"
    assert "memory" in failures[1].message


def peak_of_batch_command(images: Path, cache: Path) -> tuple[int, str]:
    """Run ``python -m core.precompute`` on `images`; its peak resident memory (MB,
    VmHWM) and its output."""
    script = ("import runpy, sys\n"
              "sys.argv = ['core.precompute'] + sys.argv[1:]\n"
              "try:\n"
              "    runpy.run_module('core.precompute', run_name='__main__')\n"
              "finally:\n"
              "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
              "    print('PEAK', int(hwm.split()[1]) // 1024, flush=True)\n")
    out = subprocess.run(
        [sys.executable, "-c", script, "--model", "demo", "--images", str(images),
         "--cache", str(cache), "--device", "cpu"], cwd=ROOT, capture_output=True,
        text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP,) * 2))
    peak = [int(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("PEAK")]
    return (peak[0] if peak else -1), out.stdout + out.stderr + f"\nexit {out.returncode}"


def test_the_batch_command_stays_within_its_memory_on_hostile_files(tmp_path):
    for name in ("clean", "hostile"):
        (tmp_path / name).mkdir()
    clean = demo_flat_folder(tmp_path / "clean", count=2, broken=False)
    hostile = demo_flat_folder(tmp_path / "hostile", count=2, broken=False)
    (hostile / "thin.png").write_bytes(thin_png(3_000_000))
    (hostile / "thinner.png").write_bytes(thin_png(20_000_000))
    os.mkfifo(hostile / "x.png")
    (hostile / "labels.csv").write_text("img0.png,Bag\n" + "".join(
        f"ghost{i}.png,Coat\n" for i in range(1_000_000)))
    baseline, clean_out = peak_of_batch_command(clean, tmp_path / "cache-clean")
    peak, out = peak_of_batch_command(hostile, tmp_path / "cache-hostile")
    print(f"peak resident memory of the batch command: clean {baseline} MB, "
          f"hostile {peak} MB (bound: clean + {MEMORY_MARGIN_MB} MB)")
    assert "precompute: 2 images done" in clean_out, clean_out[-3000:]
    assert "precompute: 2 images done" in out, out[-3000:]
    for name in ("thin.png", "thinner.png", "x.png"):
        assert f"skipped {name}:" in out
    assert 0 < peak < baseline + MEMORY_MARGIN_MB, (baseline, peak)
