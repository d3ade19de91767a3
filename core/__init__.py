"""ViT Attention Explorer engine: no Streamlit here, usable from a notebook.

The public API::

    from core import load_model, load_dataset, load_batch, forward, head_mask, run
"""
from core.cache import ArrayCache
from core.capture import Capture, forward, head_mask, region_mask
from core.datasets import Dataset, load_batch, load_dataset
from core.engine import Analysis, run
from core.models import LoadedModel, ModelLoadError, from_module, load_model

__all__ = ["Analysis", "ArrayCache", "Capture", "Dataset", "LoadedModel", "ModelLoadError",
           "forward", "from_module", "head_mask", "load_batch", "load_dataset", "load_model",
           "region_mask", "run"]
