"""The batch command and checkpoints, round two: a cache that cannot store from the
start or stops midway makes it exit 1; file names cannot forge its summary or drive
the terminal; NaN, integer and oversized-header checkpoints are refused in words,
fast."""
from __future__ import annotations

import sqlite3
import struct
import time

import diskcache
import pytest
import torch
from safetensors.torch import load_file, save_file

from core import precompute
from core.analyses.forward import FORWARD
from core.data.paths import DEMO_DIR
from core.model.errors import ModelLoadError
from core.model.loading import load_model
from testing.images import demo_flat_folder


@pytest.fixture
def forward_only(monkeypatch):
    monkeypatch.setattr(precompute, "ANALYSES", {"forward": FORWARD})
    monkeypatch.setattr(precompute, "DATASET_STEPS", {})


def batch(folder, cache) -> int:
    return precompute.main(["--model", "demo", "--images", str(folder), "--cache", str(cache),
                            "--device", "cpu"])


def test_a_cache_that_cannot_be_opened_from_the_start_exits_1(tmp_path, monkeypatch,
                                                               forward_only, capsys):
    folder = demo_flat_folder(tmp_path, count=2, broken=False)

    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(diskcache, "Cache", read_only)
    assert batch(folder, tmp_path / "cache") == 1
    assert "nothing can be stored" in capsys.readouterr().err


def test_a_cache_that_turns_off_midway_exits_1(tmp_path, monkeypatch, forward_only, capsys):
    folder = demo_flat_folder(tmp_path, count=3, broken=False)

    def corrupt(self, key, *args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(diskcache.Cache, "get", corrupt)  # reads fail: the cache turns off
    assert batch(folder, tmp_path / "cache") == 1
    assert "could not be stored" in capsys.readouterr().err


def test_file_names_are_printed_escaped(tmp_path, forward_only, capsys):
    folder = demo_flat_folder(tmp_path, count=1, broken=False)
    (folder / "c.png\nprecompute: 1000 images done, 0 skipped.png").write_bytes(b"x")
    (folder / "\x1b[2Jred.png").write_bytes(b"x")
    assert batch(folder, tmp_path / "cache") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "skipped \\x1b[2Jred.png" in out
    summary = [line for line in out.splitlines() if line.startswith("precompute:")]
    assert len(summary) == 1 and summary[0].startswith("precompute: 1 images done"), summary
    assert "skipped c.png\\nprecompute: 1000 images" in out


def demo_state() -> dict[str, torch.Tensor]:
    return load_file(str(DEMO_DIR / "model.safetensors"))


def test_a_nan_checkpoint_is_refused_in_words(tmp_path):
    state = demo_state()
    state["head.weight"][0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    with pytest.raises(ModelLoadError, match=r"NaN or infinite values in 1 tensor.*head\.weight"):
        load_model("demo", tmp_path / "nan.safetensors", device="cpu")


def test_an_integer_checkpoint_is_refused_in_words(tmp_path):
    state = {k: (v * 100).to(torch.int64) for k, v in demo_state().items()}
    save_file(state, str(tmp_path / "int.safetensors"))
    with pytest.raises(ModelLoadError, match=r"integer or boolean tensor.*int64.*float32"):
        load_model("demo", tmp_path / "int.safetensors", device="cpu")


def test_an_oversized_safetensors_header_is_refused_before_it_is_read(tmp_path):
    size = 20 * 2**20  # an empty JSON object padded to 20 MB
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", size) + b"{" + b" " * (size - 2) + b"}")
    begin = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"header of 20,971,520 bytes.*not a model"):
        load_model("demo", path, device="cpu")
    assert time.perf_counter() - begin < 1
