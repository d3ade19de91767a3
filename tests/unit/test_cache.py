"""The array cache: round trips, no unpickling, corrupt entries, unusable folders."""
from __future__ import annotations

import builtins
import pickle
from dataclasses import dataclass

import diskcache
import numpy as np

from core.storage.cache import ArrayCache
from core.storage.keys import cache_key, target_part


class Exploit:
    def __reduce__(self):
        return (exec, ("import builtins; builtins.CACHE_EXPLOITED = True",))


def test_round_trip_keeps_dtypes_and_shapes(tmp_path):
    cache = ArrayCache(tmp_path)
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4),
              "b": np.array([1, 2], dtype=np.int64), "big": np.random.rand(100, 100)}
    cache.set("k", arrays)
    got = ArrayCache(tmp_path).get("k")  # a new instance reads what is on disk
    assert set(got) == set(arrays)
    for name in arrays:
        assert got[name].dtype == arrays[name].dtype
        np.testing.assert_array_equal(got[name], arrays[name])


def test_pickled_values_are_never_loaded(tmp_path):
    plain = diskcache.Cache(str(tmp_path))  # what an attacker with write access could plant
    plain.set("k", Exploit())
    plain.set("k2", pickle.dumps(Exploit()))  # bytes that are a pickle: np.load must refuse
    plain.close()
    cache = ArrayCache(tmp_path)
    assert cache.get("k") is None
    assert cache.get("k2") is None
    assert not hasattr(builtins, "CACHE_EXPLOITED")


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = ArrayCache(tmp_path)
    cache._store.set("k", b"\x00garbage")
    assert cache.get("k") is None  # dropped: the engine recomputes it
    assert "k" not in cache._store
    cache.set("k", {"x": np.ones(2)})
    np.testing.assert_array_equal(cache.get("k")["x"], np.ones(2))


def test_unusable_folder_turns_the_cache_off_with_a_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = ArrayCache(blocker / "cache")
    assert not cache.enabled and "running without a cache" in cache.warning
    cache.set("k", {"x": np.ones(1)})  # writes nothing, raises nothing
    assert cache.get("k") is None and len(cache) == 0


def test_keys_depend_on_every_part():
    @dataclass(frozen=True)
    class Params:
        a: int = 1

    base = cache_key("m@1", "img", "forward", 1, Params(1), "-")
    assert base != cache_key("m@2", "img", "forward", 1, Params(1), "-")
    assert base != cache_key("m@1", "img2", "forward", 1, Params(1), "-")
    assert base != cache_key("m@1", "img", "other", 1, Params(1), "-")
    assert base != cache_key("m@1", "img", "forward", 2, Params(1), "-")
    assert base != cache_key("m@1", "img", "forward", 1, Params(2), "-")
    assert base != cache_key("m@1", "img", "forward", 1, Params(1), "3")
    assert base == cache_key("m@1", "img", "forward", 1, Params(), "-")  # defaults: same key
    assert target_part(None, True) != target_part(0, True) != target_part(1, True)
    assert target_part(4, False) == target_part(None, False) == "-"


def test_cache_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "c"))
    assert ArrayCache().directory == tmp_path / "c"
