"""Head importance by exact leave-one-out pruning (SPEC "Head pruning"; paper 001,
section 5.2).

For each head ``(l, h)`` of an image the four metrics of SPEC "Head pruning":
``prob`` (``P[y] - P'[y]``), ``jsd`` (Jensen-Shannon divergence of ``P`` and ``P'``,
natural log), ``cls_dist`` and ``patch_dist`` (cosine distance between the pruned
layer's attention output ``z`` with and without pruning, on the CLS row and averaged
over the patch rows). ``y`` is the image's target, resolved by the engine: by default
its true label, or its predicted class when it has none. A model without class scores
fills the first two slots with ``sim`` (``s - s'``) and ``emb_dist`` (``1 - cos`` of the
embeddings) instead (SPEC "Models without class scores"; :func:`metric_names`).

The fast path is exact, not approximated: one unmasked forward keeps every block's
input; for layer ``l`` the ``H`` pruned variants of each image start from that input
(the activations before ``l`` are the same with and without pruning), run together as
one batch, and the layer-level metrics come from block ``l``'s output captured on the
way. Layers after ``l`` need no capture and use fused attention; on the CPU the linear
layers run on oneDNN with the MLP's GELU fused in (``core.model._kernels``).
``testing.reference.naive_leave_one_out`` is the one-head-at-a-time reference it is
tested against.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.analyses.base import Analysis, NoParams, Output
from core.model.targets import Explained, Targets
from core.model import TOKENS_PER_FORWARD, LoadedModel
from core.model._families import output_from_heads
from core.model._kernels import onednn
from core.model._rerun import forward_from, states
from core.storage.cache import Arrays

METRICS = ("prob", "jsd", "cls_dist", "patch_dist")
EMBEDDING_METRICS = ("sim", "emb_dist", "cls_dist", "patch_dist")  # the same slots for a
# model without classes (SPEC "Models without class scores")
METRIC_LABELS = {
    "prob": "Probability drop (P - P', percentage points)",
    "jsd": "Jensen-Shannon divergence of the predictions",
    "sim": "Similarity score drop (s - s')",
    "emb_dist": "Embedding change (cosine distance)",
    "cls_dist": "CLS output change (cosine distance)",
    "patch_dist": "Patch output change (mean cosine distance)",
}
METRIC_AXES = {  # short axis titles, with units
    "prob": "Probability drop (percentage points)",
    "jsd": "Jensen-Shannon divergence (0 to 0.69)",
    "sim": "Score drop (s - s', 1 = the reference)",
    "emb_dist": "Embedding change (cosine distance)",
    "cls_dist": "CLS output change (cosine distance)",
    "patch_dist": "Patch output change (cosine distance)",
}
METRIC_SCALES = {"prob": 100.0}  # computed as a fraction, shown in percentage points
METRIC_COLUMNS = {  # a metric's column in a table or CSV: what it holds, in its unit
    "prob": "probability_drop_percentage_points",
    "jsd": "jensen_shannon_divergence",
    "sim": "score_drop",
    "emb_dist": "embedding_cosine_distance",
    "cls_dist": "cls_output_cosine_distance",
    "patch_dist": "patch_output_cosine_distance",
}


def shown(metric: str, values: np.ndarray) -> np.ndarray:
    """`metric`'s values as computed, in the one unit every view (chart, table, CSV,
    report) gives them: the probability drop in percentage points, the others as they
    are."""
    return METRIC_SCALES.get(metric, 1.0) * np.asarray(values)


METRIC_HELP = (  # what each metric means, in plain words (the pages' help)
    "Probability drop: how many percentage points the probability of the class drops "
    "when the head is switched off (negative: it rises). "
    "Jensen-Shannon divergence: how much the whole prediction (all classes) changes, "
    "0 = not at all, ln 2 = 0.69 at most. "
    "Score drop (models without classes): how much the image's similarity score to the "
    "reference embedding drops, where 1 is the reference itself. "
    "Embedding change: the cosine distance between the embeddings with and without "
    "the head. "
    "CLS output change: the cosine distance between the layer's CLS output with and "
    "without the head, 0 = same direction, 1 = orthogonal. "
    "Patch output change: the same, averaged over the patch tokens.")


def metric_names(lm: LoadedModel) -> tuple[str, ...]:
    """The names of the four metric slots for this model."""
    return METRICS if lm.has_classes else EMBEDDING_METRICS


def metric_slot(name: str) -> int:
    """The slot of metric `name` (either model kind's names)."""
    names = METRICS if name in METRICS else EMBEDDING_METRICS
    if name not in names:
        raise ValueError(f"Unknown importance metric {name!r}; use one of "
                         f"{', '.join(METRICS)} (or, without classes, "
                         f"{', '.join(EMBEDDING_METRICS)}).")
    return names.index(name)


def metrics(explained: Explained, outputs: torch.Tensor, pruned_outputs: torch.Tensor,
            z: torch.Tensor, pruned_z: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """The four metrics (N x 4, float64) of N pruned variants against their originals.

    explained: one target per variant; outputs, pruned_outputs: variant x output (class
    logits: ``prob``, ``jsd``; embeddings: ``sim``, ``emb_dist``); z, pruned_z: variant x
    token x width (attention outputs).
    """
    a, b = outputs.double(), pruned_outputs.double()
    first = explained.score(a) - explained.score(b)
    if explained.classes is not None:
        p, q = a.softmax(-1), b.softmax(-1)
        m = (p + q) / 2
        kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
        kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
        second = (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)
    else:
        second = 1.0 - torch.nn.functional.cosine_similarity(a, b, dim=-1)
    distance = 1.0 - torch.nn.functional.cosine_similarity(z.double(), pruned_z.double(), dim=-1)
    return torch.stack([first, second, distance[:, 0],
                        distance[:, num_prefix_tokens:].mean(-1)], dim=-1)


def without_each_head(attn: nn.Module, heads: torch.Tensor) -> torch.Tensor | None:
    """The attention output z with each head pruned in turn, from the unpruned head
    outputs `heads` (n x T x H*d, as ``core.model._rerun.States.heads`` reads them):
    pruning head k (A = 0) zeroes its slice there. n*H x T x D, image-major; None when
    z is not a function of the head outputs alone (``_families.output_from_heads``)."""
    n, tokens, width = heads.shape
    k = attn.num_heads
    variants = heads.repeat_interleave(k, dim=0).view(n, k, tokens, k, width // k).clone()
    each = torch.arange(k)
    variants[:, each, :, each, :] = 0.0
    return output_from_heads(attn, variants.view(n * k, tokens, width))


@torch.no_grad()
def leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: Targets) -> np.ndarray:
    """All metrics for every head of every image of `x`: image x metric x layer x head
    (float64). Holds the model's lock throughout (its kernels are swapped)."""
    with lm.lock, onednn(lm):
        return _leave_one_out(lm, x, targets)


def _leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: Targets) -> np.ndarray:
    base = states(lm, x)
    explained = Explained.of(base.logits, targets, lm.has_classes)
    n_img, n_heads = len(x), lm.num_heads
    out = torch.zeros(n_img, len(METRICS), lm.num_layers, n_heads, dtype=torch.float64)
    # variant k of an image prunes head k: mask[k, k] = 0 (used where z cannot be derived)
    one_head = (1.0 - torch.eye(n_heads)).view(n_heads, n_heads, 1, 1)
    step = max(1, TOKENS_PER_FORWARD // (n_heads * lm.num_tokens))
    for layer, attn in enumerate(lm.attention_modules):
        for start in range(0, n_img, step):
            chunk = slice(start, min(start + step, n_img))
            n = chunk.stop - chunk.start

            def per_variant(t: torch.Tensor) -> torch.Tensor:
                return t[chunk].repeat_interleave(n_heads, dim=0)

            pruned_z = without_each_head(attn, base.heads[layer][chunk])
            logits, z = forward_from(
                lm, per_variant(base.inputs[layer]), layer, attn_output=pruned_z,
                mask=None if pruned_z is not None else one_head.repeat(n, 1, 1, 1))
            values = metrics(explained.select(chunk).repeat(n_heads),
                             per_variant(base.logits), logits,
                             per_variant(base.outputs[layer]), z, lm.num_prefix_tokens)
            out[chunk, :, layer, :] = values.view(n, n_heads, -1).permute(0, 2, 1).cpu()
    return out.numpy()


def compute(lm: LoadedModel, images: torch.Tensor, targets: Targets,
            params: NoParams) -> list[Arrays]:
    """Per image: ``importance`` (metric layer head, float32, metrics in METRICS order)."""
    values = leave_one_out(lm, images, targets)
    return [{"importance": v.astype(np.float32)} for v in values]


IMPORTANCE = Analysis(
    name="importance", params=NoParams, compute=compute, target="label",
    outputs={"importance": Output("float32", "metric layer head")},
    forwards=lambda lm, params: 1 + lm.num_layers * lm.num_heads / 2)  # a pruned variant
    # per head, run from its layer on (half a forward on average)
