"""What one visitor may store or hold, bounded by settings an administrator gives:
the cache's size (least recently used entries evicted first), uploads per upload and
per server, models held in memory (keyed on the resolved checkpoint and the
normalised name), upload bytes held in memory per session."""
from __future__ import annotations

import numpy as np

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
