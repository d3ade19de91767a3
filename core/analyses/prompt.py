"""The per-image analysis ``prompt``: the attention prompt (SPEC "Prompting at
inference"; seed paper 002, "prompting during model inference"). In every layer every
row of every head's attention is reweighted, ``A'[i, j] = A[i, j] w_j / sum_k A[i, k]
w_k``, with ``w_j = alpha`` for the patch tokens outside the object and 1 for the others
(prefix tokens 1): ``alpha = 0`` removes the outside patches as keys (nothing attends to
them), ``alpha = 1`` is the model unchanged. The object is, in turn, the one object
definition (``core.analyses.objects``: a mask where the image has one, else its keypoint
patches; read through ``spurious``) and the SIFT keypoint patches (``c_j > 0``).

Per image, for each object of ``PROMPT_OBJECTS`` and each ``alpha``: the prompted top-1
class and the probability of the class explained (the unprompted prediction; the score
``s`` for a model without classes, whose top-1 is -1); beside them the unprompted and
the pixel counterfactual (the outside filled with the mean, from ``spurious``).

Shapes: ``top``, ``probability`` (prompt_object alpha).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.analyses.base import Analysis, Output, Read, per_image
from core.analyses.sift import SIFT, SiftParams, keypoints_of
from core.analyses.spurious import SPURIOUS
from core.data.keypoints import concentration
from core.model import LoadedModel, capture, logits
from core.model.targets import Explained, Targets
from core.storage.cache import Arrays

PROMPT_OBJECTS = ("object", "keypoints")  # what "inside" is: the one object definition,
# or the SIFT keypoint patches
ALPHAS = (0.0, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class PromptParams:
    alphas: tuple[float, ...] = ALPHAS  # weights of the outside patches as keys

    def __post_init__(self) -> None:
        if not self.alphas or any(not 0.0 <= a <= 1.0 for a in self.alphas):
            raise ValueError(f"alphas must lie in [0, 1], got {self.alphas}")


def key_weights(lm: LoadedModel, inside: torch.Tensor, alpha: float) -> torch.Tensor:
    """(image, token) key weights: 1 for prefix tokens and patches inside (image, patch),
    `alpha` for the patches outside."""
    prefix = torch.ones(len(inside), lm.num_prefix_tokens, device=inside.device)
    patches = torch.where(inside, 1.0, alpha).to(prefix.dtype)
    return torch.cat([prefix, patches], dim=1)


def prompted(lm: LoadedModel, x: torch.Tensor, inside: torch.Tensor, alpha: float
             ) -> torch.Tensor:
    """(image, output) outputs of images x with the prompt on object `inside` (image,
    patch) at strength `alpha`, in every layer."""
    mask = key_weights(lm, inside.to(lm.device), alpha)[:, None, None, :]
    with torch.no_grad():
        return capture.forward(lm, x, masks={layer: mask for layer in range(lm.num_layers)},
                               layers=(), renormalise=True).logits


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets, params: PromptParams,
            reads: dict) -> list[Arrays]:
    """Per image: ``top``, ``probability`` (prompt_object alpha)."""
    x = images.to(lm.device)
    explained = Explained.of(logits(lm, x), targets, lm.has_classes)
    spurious = reads[SPURIOUS.name]
    objects = {"object": np.stack([s["inside"] for s in spurious]),
               "keypoints": np.stack([concentration(keypoints_of(s), lm.grid, lm.patch_size) > 0
                                      for s in reads[SIFT.name]])}
    top = np.zeros((len(x), len(PROMPT_OBJECTS), len(params.alphas)), dtype=np.int64)
    probability = np.zeros(top.shape, dtype=np.float32)
    for o, name in enumerate(PROMPT_OBJECTS):
        inside = torch.from_numpy(objects[name])
        for a, alpha in enumerate(params.alphas):
            out = prompted(lm, x, inside, alpha)
            top[:, o, a] = out.argmax(-1).cpu().numpy() if lm.has_classes else -1
            probability[:, o, a] = explained.score(out).cpu().numpy()
    return per_image({"top": top, "probability": probability}, len(x))


PROMPT = Analysis(
    name="prompt", params=PromptParams, compute=compute, target="prediction",
    reads=(Read(SPURIOUS, lambda params: SiftParams()), Read(SIFT, lambda params: SiftParams())),
    forwards=lambda lm, params: 1 + len(PROMPT_OBJECTS) * len(params.alphas),
    outputs={"top": Output("int64", "prompt_object alpha"),
             "probability": Output("float32", "prompt_object alpha")},
    batch_size=32, precompute=False)  # the Keypoints page computes an image's when it is
    # opened; the precompute, through the rates' step, on a set with a known shortcut only
