"""The "keypoints" analysis: attention read against SIFT keypoints (SPEC "Keypoints and
spurious correlations", seed paper 002).

Per image: SIFT keypoints (read from ``core.analyses.sift``), their concentration ``c_j`` per
patch and ``K = {j : c_j > 0}``; per head (l, h):

- ``share``: the CLS row over the patches, renormalised to sum 1 over the patches,
  summed over ``K``; ``chance`` = ``|K| / G``; ``lift`` = share / chance.
- ``interrelation`` (the paper's weighted patch interrelation): patches in three bins
  by ``c_j``: 0 no keypoint, 1 at or below the median of the non-zero values, 2 above
  it (ties at the median go to bin 1). For source bin a and target bin b, the mean
  over the source patches in a of the attention mass each sends to bin b, on the
  patches->patches region with each row renormalised over the patches (3 x 3 per
  head; a row whose bin is empty is 0), shown against ``bin_share``, the bins' shares
  of the patches.

An image where SIFT finds nothing (a flat image) gives an explicit "no keypoints"
result: ``chance`` 0, share and lift 0 (never NaN); :func:`has_keypoints` says which.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.analyses.base import Analysis, Output, Read, per_image
from core.analyses.capture import CAPTURE
from core.analyses.sift import SIFT, SiftParams, keypoints_of
from core.data.keypoints import Weight, concentration
from core.model import LoadedModel, capture
from core.model.targets import Targets
from core.storage.cache import Arrays

BINS = ("no keypoint", "few keypoints", "many keypoints")  # below / above the median
TINY = 1e-12  # guards renormalising a row with no attention on the patches


@dataclass(frozen=True)
class KeypointParams(SiftParams):
    weight: Weight = "count"  # c_j: the number of keypoints, or the sum of responses


def sift_params(params: KeypointParams) -> SiftParams:
    """The SIFT detection these parameters read."""
    return SiftParams(params.min_side)


def keypoint_bins(c: torch.Tensor) -> torch.Tensor:
    """(patch,) concentrations -> (patch,) bins 0, 1, 2 (see the module docstring)."""
    nonzero = c[c > 0]
    if len(nonzero) == 0:
        return torch.zeros_like(c, dtype=torch.long)
    median = nonzero.float().quantile(0.5)
    return torch.where(c <= 0, 0, torch.where(c <= median, 1, 2))


def attention_against(attention: torch.Tensor, c: torch.Tensor, prefix: int
                      ) -> dict[str, torch.Tensor]:
    """Share, chance, lift and interrelation of (batch, layer, head, token, token)
    attention against (batch, patch) concentrations."""
    on = (c > 0).to(attention.dtype)
    cls = capture.cls_attention(attention, prefix)
    cls = cls / cls.sum(-1, keepdim=True).clamp_min(TINY)
    share = torch.einsum("blhg,bg->blh", cls, on)
    chance = on.mean(-1)
    lift = torch.where(chance[:, None, None] > 0, share / chance.clamp_min(TINY)[:, None, None],
                       torch.zeros_like(share))
    bins = torch.nn.functional.one_hot(torch.stack([keypoint_bins(row) for row in c]),
                                       len(BINS)).to(attention.dtype)  # b g bin
    mass = torch.stack([  # to each target bin, one layer's renormalised rows at a time
        torch.einsum("bhst,btk->bhsk", p / p.sum(-1, keepdim=True).clamp_min(TINY), bins)
        for p in attention[..., prefix:, prefix:].unbind(1)], dim=1)
    sources = bins.sum(1)  # b bin
    table = torch.einsum("blhsk,bsa->blhak", mass, bins) / sources.clamp_min(1)[:, None, None,
                                                                              :, None]
    return {"share": share, "chance": chance, "lift": lift, "interrelation": table,
            "bin_share": sources / c.shape[-1]}


def has_keypoints(arrays: Arrays) -> bool:
    """Whether SIFT found a keypoint in the image (else share and lift are 0)."""
    return bool(arrays["chance"] > 0)


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: KeypointParams, reads: dict) -> list[Arrays]:
    """Per image, from its SIFT keypoints and the batch's capture: ``concentration``
    (patch), ``share`` and ``lift`` (layer head), ``chance``, ``interrelation`` (layer
    head bin bin) and ``bin_share`` (bin), float32."""
    c = np.stack([concentration(keypoints_of(found), lm.grid, lm.patch_size, params.weight)
                  for found in reads[SIFT.name]])
    attention = reads[CAPTURE.name].attention.float().cpu()
    out = attention_against(attention, torch.from_numpy(c), lm.num_prefix_tokens)
    arrays = {name: value.numpy().astype(np.float32) for name, value in out.items()}
    arrays["concentration"] = c
    return per_image(arrays, len(images))


KEYPOINTS = Analysis(
    name="keypoints", params=KeypointParams, compute=compute, batch_size=16,
    reads=(Read(CAPTURE), Read(SIFT, sift_params)), version=2,  # 2: keypoints read from sift
    outputs={"concentration": Output("float32", "patch"),
             "share": Output("float32", "layer head"), "lift": Output("float32", "layer head"),
             "chance": Output("float32"),
             "interrelation": Output("float32", "layer head bin bin"),
             "bin_share": Output("float32", "bin")})
