"""On-disk cache of analysis results (diskcache), arrays only.

Values are ``.npz`` bytes loaded with ``allow_pickle=False``; keys are plain strings
(built by :mod:`core.storage.keys`). The disk class refuses pickled keys and values
outright, so nothing in the cache is ever unpickled (diskcache 5.6.3, CVE-2025-69872).
The cache holds at most ``$VIT_EXPLORER_CACHE_MAX_BYTES`` (default 8 GiB); past it the
least recently *used* entries are evicted (diskcache's default would evict the least
recently stored: a precomputed set first). A corrupt entry is dropped and recomputed; a
cache folder that cannot be opened, or whose database turns out corrupt while in use,
turns the cache off with a message instead of failing; writes that fail, or are
dropped once the cache is off, are counted (``failed_writes``) for the batch command.
"""
from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path

import diskcache
import numpy as np

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "cache"
DEFAULT_MAX_BYTES = 8 * 2**30  # $VIT_EXPLORER_CACHE_MAX_BYTES
Arrays = dict[str, np.ndarray]


class _NoPickleDisk(diskcache.Disk):
    """A diskcache Disk that stores and returns only str keys and bytes values."""

    def put(self, key):  # noqa: D102
        if not isinstance(key, str):
            raise TypeError("cache keys must be strings")
        return super().put(key)

    def get(self, key, raw):  # noqa: D102
        if not raw:
            raise ValueError("refusing to unpickle a cache key")
        return super().get(key, raw)

    def store(self, value, read, key=diskcache.core.UNKNOWN):  # noqa: D102
        if not isinstance(value, bytes):
            raise TypeError("cache values must be bytes")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):  # noqa: D102
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            raise ValueError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


def encode(arrays: Arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode(blob: bytes) -> Arrays:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def cache_folder() -> Path:
    """The server's cache folder: ``VIT_EXPLORER_CACHE``, else ``cache/`` in the checkout."""
    return Path(os.environ.get("VIT_EXPLORER_CACHE") or DEFAULT_DIR)


def max_bytes() -> int:
    """The cache's size bound ($VIT_EXPLORER_CACHE_MAX_BYTES, default 8 GiB)."""
    return int(os.environ.get("VIT_EXPLORER_CACHE_MAX_BYTES") or DEFAULT_MAX_BYTES)


class ArrayCache:
    """Arrays by key on disk; `enabled` is False (with `warning`) when unusable."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else cache_folder()
        self.warning: str | None = None
        self.failed_writes = 0
        try:
            self._store: diskcache.Cache | None = diskcache.Cache(
                str(self.directory), disk=_NoPickleDisk, size_limit=max_bytes(),
                eviction_policy="least-recently-used")
        except Exception as err:  # unwritable folder, read-only disk...
            self._store = None
            self.warning = (f"Cache folder {self.directory} is not usable ({err}); running "
                            "without a cache (results are recomputed). Set VIT_EXPLORER_CACHE "
                            "to a writable folder to keep them.")

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def _unusable(self, err: Exception) -> None:
        """Turn the cache off (its database is corrupt) and say so."""
        self._store = None
        self.warning = (f"Cache folder {self.directory} is not usable any more ({err}); "
                        "running without a cache (results are recomputed). Remove or move "
                        "the folder to start a new cache.")

    def get(self, key: str) -> Arrays | None:
        if self._store is None:
            return None
        try:
            blob = self._store.get(key)
            return None if blob is None else decode(blob)
        except sqlite3.DatabaseError as err:
            self._unusable(err)
            return None
        except Exception:  # corrupt entry: drop it, the caller recomputes
            try:
                self._store.delete(key)
            except sqlite3.DatabaseError as err:
                self._unusable(err)
            return None

    def set(self, key: str, arrays: Arrays) -> None:
        if self._store is None:  # turned off: nothing is stored, and the count says so
            self.failed_writes += 1
            return
        try:
            self._store.set(key, encode(arrays))
        except sqlite3.DatabaseError as err:
            self.failed_writes += 1
            self._unusable(err)
        except Exception as err:  # disk full, permissions changed: keep working
            self.failed_writes += 1
            self.warning = f"Could not write to the cache at {self.directory} ({err})."

    def __len__(self) -> int:
        if self._store is None:
            return 0
        try:
            return len(self._store)
        except sqlite3.DatabaseError as err:
            self._unusable(err)
            return 0
