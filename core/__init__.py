"""ViT Attention Explorer engine: no Streamlit here, usable from a notebook.

The public API::

    from core import load_model, load_dataset, load_batch, forward, head_mask, run
    from core import ANALYSES, METHODS, DATASET_STEPS, explain, run_step, ArrayCache

Packages: ``model`` (loading, capture; private taps, re-runs and kernels),
``analyses`` (per-image analyses and their registry), ``explain`` (explanation
methods and their registry), ``dataset`` (dataset-level steps and their registry),
``data`` (image sets, decoding, uploads, allowed paths), ``storage`` (cache, keys),
``display`` (numbers shaped for the pages), ``precompute`` (the batch precompute,
``python -m core.precompute``; on Ray with ``ray_executor``), ``cli`` (demo training).
"""
from core.analyses import ANALYSES, Analysis
from core.data.datasets import load_dataset
from core.data.inputs import load_batch
from core.data.records import Dataset
from core.dataset import DATASET_STEPS, DatasetStep
from core.engine import RunResult, StepResult, run, run_step
from core.explain import METHODS, explain
from core.model import (Capture, LoadedModel, ModelLoadError, forward, from_module, head_mask,
                        load_model, logits, region_mask)
from core.storage import ArrayCache

__all__ = ["ANALYSES", "Analysis", "ArrayCache", "Capture", "DATASET_STEPS", "Dataset",
           "DatasetStep", "LoadedModel", "METHODS", "ModelLoadError", "RunResult",
           "StepResult", "explain", "forward", "from_module", "head_mask", "load_batch",
           "load_dataset", "load_model", "logits", "region_mask", "run", "run_step"]
