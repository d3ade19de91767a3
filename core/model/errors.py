"""The one error a model spec that cannot be loaded raises."""
from __future__ import annotations


class ModelLoadError(ValueError):
    """A model spec that cannot be loaded; the message says why and what to do."""
