"""Content hashes of images and masks (a part of every cache key). A file's hash is
memoised for the process by its resolved path, size and modification time, so that a
rerun reads no file it has already hashed, and a file changed since is hashed anew."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

MEMO_SIZE = 1 << 16  # files whose hashes are kept (the least recently used go first)


def image_hash(data: bytes) -> str:
    """The content hash of one image file (or of the demo's raw pixels)."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def file_hash(path: Path) -> str:
    """:func:`image_hash` of the file at `path`, read only when its resolved path, size
    or modification time is not among those hashed before (raises OSError)."""
    stat = path.stat()
    return _hash_of(path.resolve(), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=MEMO_SIZE)
def _hash_of(path: Path, size: int, mtime_ns: int) -> str:
    """The hash of `path` as it was at `size` and `mtime_ns` (the memo's key)."""
    return image_hash(path.read_bytes())
