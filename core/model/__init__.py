"""Model access: loading a timm ViT (or the demo) and running it with attention
captured or heads masked. The capture machinery (taps, re-running from a layer,
kernel swaps) is private; every call that uses it holds the model's lock."""
from core.model._kernels import TOKENS_PER_FORWARD
from core.model.capture import (MODE_NAMES, PRUNING_MODES, Capture, cls_attention, forward,
                                head_mask, logits, region_mask)
from core.model.errors import ModelLoadError
from core.model.loaded import LoadedModel
from core.model.loading import from_module, load_model

__all__ = ["Capture", "LoadedModel", "MODE_NAMES", "ModelLoadError", "PRUNING_MODES", "TOKENS_PER_FORWARD",
           "cls_attention", "forward", "from_module", "head_mask", "load_model", "logits",
           "region_mask"]
