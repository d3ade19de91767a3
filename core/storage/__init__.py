"""Storage of results: the on-disk array cache and the one builder of its keys."""
from core.storage.cache import ArrayCache, Arrays
from core.storage.keys import cache_key, image_set_hash

__all__ = ["ArrayCache", "Arrays", "cache_key", "image_set_hash"]
