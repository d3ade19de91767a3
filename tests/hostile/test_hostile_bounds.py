"""What one visitor may store or hold, bounded by settings an administrator gives:
the cache's size (least recently used entries evicted first), uploads per upload and
per server, models held in memory (keyed on the resolved checkpoint and the
normalised name), upload bytes held in memory per session."""
from __future__ import annotations

import numpy as np

from core.data.paths import DEMO_DIR
from core.storage.cache import ArrayCache

ENTRY = {"a": np.zeros(10_000, np.float32)}  # 40 kB: stored as a file, counted whole


def test_the_cache_evicts_the_least_recently_used_entries_not_the_oldest(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE_MAX_BYTES", str(2 * 2**20))
    cache = ArrayCache(tmp_path / "cache")
    for i in range(5):  # a precomputed set, stored first
        cache.set(f"pre{i}", ENTRY)
    for i in range(100):  # one visitor's new results, while others read the set
        cache.set(f"new{i}", ENTRY)
        assert all(cache.get(f"pre{j}") is not None for j in range(5)), i
    kept = [i for i in range(5) if cache.get(f"pre{i}") is not None]
    assert kept == list(range(5))
    assert cache.get("new0") is None  # the least recently used went first
    stored = sum(f.stat().st_size for f in (tmp_path / "cache").rglob("*.val"))
    assert stored <= 2 * 2**20, stored


def counted_loads(monkeypatch) -> list[tuple[str, str | None]]:
    """Every load_model call the app makes, with the real loader behind it."""
    import ui.resources
    calls: list[tuple[str, str | None]] = []
    real = ui.resources.load_model

    def spy(spec, checkpoint=None):
        calls.append((spec, checkpoint))
        return real(spec, checkpoint, device="cpu")

    monkeypatch.setattr(ui.resources, "load_model", spy)
    ui.resources._model.clear()
    return calls


def copies(tmp_path, count: int) -> list:
    """`count` copies of the demo checkpoint, in tmp_path/w/."""
    (tmp_path / "w").mkdir()
    data = (DEMO_DIR / "model.safetensors").read_bytes()
    paths = [tmp_path / "w" / f"m{i}.safetensors" for i in range(count)]
    for path in paths:
        path.write_bytes(data)
    return paths


def test_spellings_of_one_model_load_it_once(tmp_path, monkeypatch):
    import ui.resources
    calls = counted_loads(monkeypatch)
    (path,) = copies(tmp_path, 1)
    monkeypatch.chdir(tmp_path)
    spellings = [("demo", str(path)), ("demo  ", "./w/m0.safetensors"),
                 (" demo", "w/./m0.safetensors"), ("demo", f"{tmp_path}/w/../w/m0.safetensors")]
    models = {id(ui.resources.model(spec, checkpoint)) for spec, checkpoint in spellings}
    assert len(models) == 1 and len(calls) == 1, calls
    ui.resources._model.clear()


def test_the_least_recently_used_model_is_unloaded_first(tmp_path, monkeypatch):
    import ui.resources
    calls = counted_loads(monkeypatch)
    first, second, third = (str(p) for p in copies(tmp_path, 3))
    for checkpoint in (first, second, first, third):  # third unloads second, not first
        ui.resources.model("demo", checkpoint)
    assert [c for _, c in calls] == [first, second, third]
    ui.resources.model("demo", first)
    ui.resources.model("demo", second)
    assert [c for _, c in calls] == [first, second, third, second]
    ui.resources._model.clear()
