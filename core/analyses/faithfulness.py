"""Faithfulness of explanations (SPEC "Faithfulness of explanations").

Every map ranks the G patches, most relevant first (stable: ties keep patch
order). Choices where the SPEC is silent:

- *Removed* patch: its pixels are set to the dataset mean, i.e. zero after
  normalisation. *Revealed* (insertion): the image starts as a Gaussian-blurred
  copy (sigma = half the patch size in pixels, kernel 2 * ceil(3 sigma) + 1)
  and the chosen patches take their original pixels back.
- Deletion and insertion steps: 20 steps of 5% of the patches (rounded; 21
  points with the unperturbed one), or one patch per step when G <= 20. One
  patch per step on the 7 x 7 demo would cost 2.1 times as many forward passes
  (110 instead of 52 per image and method), too slow for the CPU precompute
  of 1,000 images; the 5% counts contain the 10% counts of the perturbation
  tests, so positive perturbation reuses the deletion passes. The curve is the softmax probability of the explained class, the
  AUC a trapezoid over x = fraction of patches in [0, 1].
- Positive and negative perturbation (Chefer et al. 2021): 0%, 10%, ..., 90% of
  the patches removed (rounded), most relevant first (positive) or least
  relevant first (negative). Without labels inside the engine, "top-1 accuracy"
  is whether the top-1 class is still the explained class (the prediction on
  the clean image by default), so both curves start at 1; per image it is 0 or
  1, and the dataset mean is the accuracy. AUC: trapezoid over the nominal
  fractions x = 0, 0.1, ..., 0.9 (at most 0.9).
- Localisation (pointing game, IoU): the object is the non-background pixels,
  pixel value > 0 before normalisation (the demo's black background). A patch
  is on the object when at least half its pixels are. Pointing: the map's
  maximum patch (the first on ties) is on the object; IoU: patches above the
  map's mean against the object patches. These are computed for every image
  but mean something only on black-background data; the page shows them for
  the demo set only.

The per-image analysis ``faithfulness`` explains each image's target (by default its
predicted class) with every method of the registry (``core.explain.METHODS``, default
parameters) and stores the maps, the curves and the per-image scores; the dataset
table is the step ``core.dataset.faithfulness_table``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from core.analyses.base import Analysis, NoParams, Output, per_image
from core.data.objects import to_patches
from core.explain import METHODS, explain
from core.model import LoadedModel, logits
from core.model.targets import Targets, classes_of
from core.storage.cache import Arrays

METHOD_NAMES = tuple(METHODS)  # every registered method, the random baseline included
CURVES = ("deletion", "insertion", "positive", "negative")
METRICS = {  # name -> (label, higher is better)
    "deletion": ("Deletion AUC", False),
    "insertion": ("Insertion AUC", True),
    "positive": ("Positive perturbation AUC", False),
    "negative": ("Negative perturbation AUC", True),
    "pointing": ("Pointing game", True),
    "iou": ("IoU", True),
}
LOCALISATION = ("pointing", "iou")
PERTURBATION_FRACTIONS = tuple(i / 10 for i in range(10))
PIXELS_PER_CHUNK = 2**21  # input values per forward pass (memory bound)


def deletion_counts(num_patches: int) -> list[int]:
    """Patches removed (or revealed) after each step, starting with 0."""
    steps = min(num_patches, 20)
    return [round(i * num_patches / steps) for i in range(steps + 1)]


def perturbation_counts(num_patches: int) -> list[int]:
    return [round(f * num_patches) for f in PERTURBATION_FRACTIONS]


def curve_x(counts: list[int], num_patches: int) -> np.ndarray:
    return np.asarray(counts, dtype=np.float64) / num_patches


def trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Area under y (..., S) over x (S,) by the trapezoid rule."""
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def ranks(maps: torch.Tensor) -> torch.Tensor:
    """B x G rank of each patch, 0 = largest value (stable on ties)."""
    order = torch.argsort(maps, dim=-1, descending=True, stable=True)
    positions = torch.arange(maps.shape[-1], device=maps.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def patch_pixels(lm: LoadedModel, chosen: torch.Tensor) -> torch.Tensor:
    """(..., G) patch flags -> (..., 1, H, W) pixel flags."""
    (gh, gw), (ph, pw) = lm.grid, lm.patch_size
    grid = chosen.reshape(*chosen.shape[:-1], 1, gh, gw)
    return grid.repeat_interleave(ph, dim=-2).repeat_interleave(pw, dim=-1)


def blurred(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """The insertion start: x blurred with sigma = half the patch size."""
    sigma = max(lm.patch_size) / 2
    return gaussian_blur(x, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)


def perturbed_logits(lm: LoadedModel, fill: torch.Tensor, start: torch.Tensor,
                     patch_ranks: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """B x S x classes: logits of `start` with its `counts[s]` first-ranked patches
    taken from `fill` (deletion: start = the image, fill = zeros; insertion:
    start = the blurred image, fill = the image)."""
    b = len(start)
    counts_t = torch.as_tensor(counts, device=start.device)
    taken = patch_pixels(lm, patch_ranks[:, None, :] < counts_t[None, :, None]).to(start.dtype)
    chunk = max(1, PIXELS_PER_CHUNK // start[0].numel())
    flat_index = [(i, s) for i in range(b) for s in range(len(counts))]
    outputs = []
    for begin in range(0, len(flat_index), chunk):
        idx = torch.as_tensor(flat_index[begin:begin + chunk], device=start.device)
        mask = taken[idx[:, 0], idx[:, 1]]
        inputs = start[idx[:, 0]] * (1 - mask) + fill[idx[:, 0]] * mask
        outputs.append(logits(lm, inputs))
    return torch.cat(outputs).reshape(b, len(counts), -1)


def object_patches(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """B x G: patches with at least half their pixels non-background (value > 0
    before normalisation, all channels considered)."""
    mean = torch.tensor(lm.data_config["mean"], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(lm.data_config["std"], device=x.device).view(1, -1, 1, 1)
    raw = x * std + mean
    on = (raw > 0.5 / 255).any(dim=1)  # under half a grey level: 0
    return to_patches(on, lm.patch_size)


def localisation(maps: torch.Tensor, on_object: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointing hit (B,) and IoU (B,) of maps B x G against object patches B x G."""
    top = maps.argmax(dim=-1, keepdim=True)
    pointing = on_object.gather(-1, top)[:, 0].float()
    above = maps > maps.mean(dim=-1, keepdim=True)
    inter = (above & on_object).sum(-1).float()
    union = (above | on_object).sum(-1).float()
    return pointing, inter / union.clamp(min=1)


def evaluate(lm: LoadedModel, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor
             ) -> dict[str, np.ndarray]:
    """Curves and scores of one method's maps (B x G) for the classes (B,)."""
    g = maps.shape[-1]
    x = x.to(lm.device)
    del_counts, pert_counts = deletion_counts(g), perturbation_counts(g)
    shared = sorted(set(del_counts) | set(pert_counts))
    order = ranks(maps)
    zeros = torch.zeros_like(x)
    removed = perturbed_logits(lm, zeros, x, order, shared)
    inserted = perturbed_logits(lm, x, blurred(lm, x), order, del_counts)
    kept_least = perturbed_logits(lm, zeros, x, ranks(-maps), pert_counts)

    def prob(logits: torch.Tensor) -> np.ndarray:
        p = logits.softmax(-1).gather(-1, classes[:, None, None].expand(-1, logits.shape[1], 1))
        return p[..., 0].cpu().numpy()

    def still_top1(logits: torch.Tensor) -> np.ndarray:
        return (logits.argmax(-1) == classes[:, None]).float().cpu().numpy()

    at = {c: i for i, c in enumerate(shared)}
    deletion = prob(removed[:, [at[c] for c in del_counts]])
    positive = still_top1(removed[:, [at[c] for c in pert_counts]])
    negative = still_top1(kept_least)
    insertion = prob(inserted)
    x_del, x_pert = curve_x(del_counts, g), np.asarray(PERTURBATION_FRACTIONS)
    pointing, iou = localisation(maps, object_patches(lm, x))
    return {"deletion_curve": deletion, "insertion_curve": insertion,
            "positive_curve": positive, "negative_curve": negative,
            "deletion": trapezoid(deletion, x_del), "insertion": trapezoid(insertion, x_del),
            "positive": trapezoid(positive, x_pert), "negative": trapezoid(negative, x_pert),
            "pointing": pointing.cpu().numpy(), "iou": iou.cpu().numpy()}


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams) -> list[Arrays]:
    """Per image, for every method of the registry in order (M rows): ``maps``
    (method patch), the four curves (method step) and the six scores (method), float32,
    plus ``class`` (the class explained)."""
    x = images.to(lm.device)
    classes = classes_of(logits(lm, x), targets)
    results = {}
    for name in METHOD_NAMES:
        maps = explain(lm, x, name, classes.tolist())
        results[name] = evaluate(lm, x, maps, classes)
        results[name]["maps"] = maps.cpu().numpy()
    stacked = {k: np.stack([results[m][k] for m in METHOD_NAMES], axis=1).astype(np.float32)
               for k in results[METHOD_NAMES[0]]}
    stacked["class"] = classes.cpu().numpy().astype(np.int64)
    return per_image(stacked, len(x))


FAITHFULNESS = Analysis(
    name="faithfulness", params=NoParams, compute=compute, target="prediction",
    version=2,  # 2: patch ablation joined the methods
    outputs={"maps": Output("float32", "method patch"),
             **{f"{m}_curve": Output("float32", "method step") for m in CURVES},
             **{m: Output("float32", "method") for m in METRICS},
             "class": Output("int64")})
