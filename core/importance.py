"""Head importance by exact leave-one-out pruning (SPEC "Head pruning"; paper 001,
section 5.2).

For each head ``(l, h)`` of an image the four metrics of SPEC "Head pruning":
``prob`` (``P[y] - P'[y]``), ``jsd`` (Jensen-Shannon divergence of ``P`` and ``P'``,
natural log), ``cls_dist`` and ``patch_dist`` (cosine distance between the pruned
layer's attention output ``z`` with and without pruning, on the CLS row and averaged
over the patch rows). ``y`` is the true label, or the predicted class when the image
has none (``target=None``).

The fast path is exact, not approximated: one unmasked forward keeps every block's
input; for layer ``l`` the ``H`` pruned variants of each image start from that input
(the activations before ``l`` are the same with and without pruning), run together as
one batch, and the layer-level metrics come from block ``l``'s output captured on the
way. Layers after ``l`` need no capture and use fused attention; on the CPU the linear
layers run on oneDNN with the MLP's GELU fused in (``core.fast_kernels``).
:func:`naive_leave_one_out` is the one-head-at-a-time reference it is tested against.
"""
from __future__ import annotations

import numpy as np
import torch
from timm.layers import Attention
from torch import nn

from core import capture
from core.cache import Arrays, ArrayCache, make_key
from core.datasets import Dataset
from core.engine import Analysis, Progress, RunResult, run
from core.fast_kernels import onednn
from core.models import LoadedModel

METRICS = ("prob", "jsd", "cls_dist", "patch_dist")
METRIC_LABELS = {
    "prob": "Probability drop of the true class (P - P')",
    "jsd": "Jensen-Shannon divergence of the predictions",
    "cls_dist": "CLS output change (cosine distance)",
    "patch_dist": "Patch output change (mean cosine distance)",
}
MAX_TOKENS = 1 << 15  # tokens per pruned-variant batch (bounds memory, keeps batches efficient)


def targets_of(logits: torch.Tensor, targets: list[int | None]) -> torch.Tensor:
    """The class each image's ``prob`` is measured on: its label, else its prediction."""
    predicted = logits.argmax(-1).tolist()
    return torch.tensor([p if t is None else t for t, p in zip(targets, predicted)],
                        device=logits.device)


def metrics(probs: torch.Tensor, pruned_probs: torch.Tensor, z: torch.Tensor,
            pruned_z: torch.Tensor, target: torch.Tensor, num_prefix_tokens: int
            ) -> torch.Tensor:
    """The four metrics (N x 4, float64) of N pruned variants against their originals.

    probs, pruned_probs: N x classes; z, pruned_z: N x T x D (attention outputs);
    target: N class indices for ``prob``.
    """
    p, q = probs.double(), pruned_probs.double()
    rows = torch.arange(len(p), device=p.device)
    prob = p[rows, target] - q[rows, target]
    m = (p + q) / 2
    kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
    kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
    jsd = (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)
    distance = 1.0 - torch.nn.functional.cosine_similarity(z.double(), pruned_z.double(), dim=-1)
    return torch.stack([prob, jsd, distance[:, 0],
                        distance[:, num_prefix_tokens:].mean(-1)], dim=-1)


def without_each_head(attn: Attention, heads: torch.Tensor) -> torch.Tensor | None:
    """The attention output z with each head pruned in turn, from the unpruned head
    outputs `heads` (n x T x H*d, the output projection's input): pruning head k
    (A = 0) zeroes its slice there. n*H x T x D, image-major; None when the module
    normalises the head outputs before the projection (zeroing would not commute)."""
    if not isinstance(attn.norm, nn.Identity):
        return None
    n, tokens, width = heads.shape
    k = attn.num_heads
    variants = heads.repeat_interleave(k, dim=0).view(n, k, tokens, k, width // k).clone()
    each = torch.arange(k)
    variants[:, each, :, each, :] = 0.0
    return attn.proj_drop(attn.proj(variants.view(n * k, tokens, width)))


@torch.no_grad()
def leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: list[int | None]) -> np.ndarray:
    """All metrics for every head of every image of `x`: B x 4 x L x H (float64)."""
    with onednn(lm.model):
        return _leave_one_out(lm, x, targets)


def _leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: list[int | None]) -> np.ndarray:
    base = capture.states(lm, x)
    probs = base.logits.softmax(-1)
    target = targets_of(base.logits, targets)
    n_img, n_heads = len(x), lm.num_heads
    out = torch.zeros(n_img, len(METRICS), lm.num_layers, n_heads, dtype=torch.float64)
    # variant k of an image prunes head k: mask[k, k] = 0 (used where z cannot be derived)
    one_head = (1.0 - torch.eye(n_heads)).view(n_heads, n_heads, 1, 1)
    step = max(1, MAX_TOKENS // (n_heads * lm.num_tokens))
    for layer, attn in enumerate(lm.attention_modules):
        for start in range(0, n_img, step):
            chunk = slice(start, min(start + step, n_img))
            n = chunk.stop - chunk.start

            def per_variant(t: torch.Tensor) -> torch.Tensor:
                return t[chunk].repeat_interleave(n_heads, dim=0)

            pruned_z = without_each_head(attn, base.heads[layer][chunk])
            logits, z = capture.forward_from(
                lm, per_variant(base.inputs[layer]), layer, attn_output=pruned_z,
                mask=None if pruned_z is not None else one_head.repeat(n, 1, 1, 1))
            values = metrics(per_variant(probs), logits.softmax(-1),
                             per_variant(base.outputs[layer]), z, per_variant(target),
                             lm.num_prefix_tokens)
            out[chunk, :, layer, :] = values.view(n, n_heads, -1).permute(0, 2, 1).cpu()
    return out.numpy()


def naive_leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: list[int | None]
                        ) -> np.ndarray:
    """Reference: prune one head at a time and run the whole model each time
    (L x H + 1 full instrumented forwards of the batch, nothing reused). Same output as
    :func:`leave_one_out`."""

    def run(masks: dict[int, torch.Tensor] | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z: list[torch.Tensor] = []
        handles = [attn.register_forward_hook(lambda _m, _a, output: z.append(output))
                   for attn in lm.attention_modules]
        try:
            return capture.forward(lm, x, masks=masks, layers=()).logits, z
        finally:
            for handle in handles:
                handle.remove()

    logits, z = run(None)
    probs = logits.softmax(-1)
    target = targets_of(logits, targets)
    out = np.zeros((len(x), len(METRICS), lm.num_layers, lm.num_heads))
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            pruned_logits, pruned_z = run({layer: capture.head_mask(lm, [head])})
            out[:, :, layer, head] = metrics(probs, pruned_logits.softmax(-1), z[layer],
                                             pruned_z[layer], target,
                                             lm.num_prefix_tokens).numpy()
    return out


def compute(lm: LoadedModel, batch: torch.Tensor, params: dict) -> list[Arrays]:
    """Per image: ``importance`` (4 metrics x L x H, float32, in METRICS order).
    params: ``{"target": class index or None}`` (None: the predicted class)."""
    values = leave_one_out(lm, batch, [params.get("target")] * len(batch))
    return [{"importance": v.astype(np.float32)} for v in values]


IMPORTANCE = Analysis(name="importance", compute=compute, batch_size=64)


def for_images(lm: LoadedModel, ds: Dataset, indices: list[int],
               cache: ArrayCache | None = None, progress: Progress | None = None) -> RunResult:
    """:data:`IMPORTANCE` of `indices`, each image measured on its own label (its
    predicted class when it has none): one cached engine run per label."""
    groups: dict[int | None, list[int]] = {}
    for i in indices:
        groups.setdefault(ds.records[i].label, []).append(i)
    result = RunResult()
    offset = 0
    for label, members in groups.items():

        def report(done: int, _total: int, offset: int = offset) -> None:
            if progress:
                progress(offset + done, len(indices))

        part = run(lm, ds, members, IMPORTANCE, {"target": label}, cache, report)
        result.arrays.update(part.arrays)
        result.skipped += part.skipped
        result.from_cache += part.from_cache
        offset += len(members)
    return result


def uncached(lm: LoadedModel, ds: Dataset, indices: list[int], cache: ArrayCache) -> list[int]:
    """The images of `indices` whose importance is not in the cache yet."""
    missing = []
    for i in indices:
        try:
            key = make_key(lm.identity, ds.content_hash(i), IMPORTANCE.name,
                           {"target": ds.records[i].label})
        except OSError:
            continue  # unreadable: a run skips it and says why
        if cache.get(key) is None:
            missing.append(i)
    return missing


def stacked(result: RunResult) -> tuple[list[int], np.ndarray]:
    """Image indices (sorted) and their importance arrays: N x 4 x L x H."""
    order = sorted(result.arrays)
    return order, np.stack([result.arrays[i]["importance"] for i in order])


def mean_and_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SPEC "Head pruning", dataset level: per metric and head, over images
    (N x 4 x L x H -> two 4 x L x H arrays; population standard deviation)."""
    return values.mean(axis=0), values.std(axis=0)
