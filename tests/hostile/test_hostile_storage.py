"""Nothing lost silently: a cache that fills up, entries that lack an array, a
database corrupted while in use, and uploads with hostile file names."""
from __future__ import annotations

import io
import threading

import diskcache
import numpy as np
import pytest
from PIL import Image

from core import precompute
from core.analyses.forward import FORWARD
from core.data import uploads
from core.data.datasets import load_dataset
from core.engine import entry_key, run
from core.storage.cache import ArrayCache
from testing.images import demo_flat_folder


def test_a_cache_that_fills_up_makes_the_batch_command_fail_and_say_so(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.setattr(precompute, "ANALYSES", {"forward": FORWARD})
    monkeypatch.setattr(precompute, "DATASET_STEPS", {})
    folder = demo_flat_folder(tmp_path, count=2, broken=False)

    def full(self, key, value, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(diskcache.Cache, "set", full)
    code = precompute.main(["--model", "demo", "--images", str(folder), "--cache",
                            str(tmp_path / "cache"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0
    assert "could not be stored" in err and "No space left on device" in err


def test_an_entry_without_a_declared_array_is_recomputed(tmp_path, demo):
    ds = load_dataset("demo", demo.class_names)
    cache = ArrayCache(tmp_path / "cache")
    key = entry_key(demo, ds, FORWARD, 0)
    cache.set(key, {"logits": np.zeros(10, np.float32)})  # no cls_attention
    assert run(demo, ds, [0], FORWARD, cache=cache, compute=False).missing == [0]
    fixed = run(demo, ds, [0], FORWARD, cache=cache)
    assert fixed.arrays[0]["cls_attention"].shape == (6, 4, 49) and fixed.from_cache == 0
    assert "cls_attention" in cache.get(key)


def test_a_database_corrupted_while_in_use_turns_the_cache_off_with_a_message(tmp_path, demo):
    cache = ArrayCache(tmp_path / "cache")
    cache.set("k", {"a": np.zeros(2)})
    database = tmp_path / "cache" / "cache.db"
    with database.open("r+b") as f:  # overwritten in place, as a failing disk would
        f.write(b"\x07" * database.stat().st_size)
    ds = load_dataset("demo", demo.class_names)
    seen: dict = {}

    def another_session() -> None:  # a new thread opens its own connection
        try:
            seen["get"] = cache.get("k")
            seen["run"] = sorted(run(demo, ds, [0, 1], FORWARD, cache=cache).arrays)
            seen["len"] = len(cache)
        except Exception as err:
            seen["error"] = err

    thread = threading.Thread(target=another_session)
    thread.start()
    thread.join()
    assert "error" not in seen, seen.get("error")
    assert seen == {"get": None, "run": [0, 1], "len": 0}
    assert not cache.enabled and "not usable" in cache.warning


def png() -> bytes:
    out = io.BytesIO()
    Image.new("L", (28, 28), 9).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def uploads_root(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_UPLOADS", str(tmp_path / "uploads"))


def test_an_upload_with_a_400_byte_name_is_kept_with_a_shorter_name(demo):
    long = "\u00e9" * 198 + ".png"  # 400 bytes in UTF-8
    spec = uploads.save_uploads([(long, png()), ("good.png", png()),
                                 ("labels.csv", f"{long},Bag\n".encode())]).images
    ds = load_dataset(spec, demo.class_names)
    assert len(ds.records) == 2 and not ds.skipped
    kept = next(r for r in ds.records if r.id != "good.png")
    assert kept.id.endswith(".png") and len(kept.id.encode()) <= 255
    assert kept.label == demo.class_names.index("Bag")


def test_uploads_whose_names_differ_only_in_case_keep_their_labels(demo):
    spec = uploads.save_uploads([("a.png", png()), ("A.png", png()),
                                 ("labels.csv", b"a.png,Bag\nA.png,Coat\n")]).images
    ds = load_dataset(spec, demo.class_names)
    assert sorted(demo.class_names[r.label] for r in ds.records) == ["Bag", "Coat"]
    assert not ds.skipped
