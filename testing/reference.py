"""Naive references written straight from the SPEC's words, one loop per quantity,
against which the batched engine is tested (and timed in the benchmarks)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from core.analyses.importance import METRICS, metrics
from core.model import LoadedModel, capture
from core.model.targets import Targets, classes_of


def naive_leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: Targets
                        ) -> np.ndarray:
    """Reference: prune one head at a time and run the whole model each time
    (L x H + 1 full instrumented forwards of the batch, nothing reused). Same output as
    ``core.analyses.importance.leave_one_out``."""

    def run(masks: dict[int, torch.Tensor] | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z: list[torch.Tensor] = []
        with lm.lock:  # the hooks change the shared model for this call only
            handles = [attn.register_forward_hook(lambda _m, _a, output: z.append(output))
                       for attn in lm.attention_modules]
            try:
                return capture.forward(lm, x, masks=masks, layers=()).logits, z
            finally:
                for handle in handles:
                    handle.remove()

    logits, z = run(None)
    probs = logits.softmax(-1)
    target = classes_of(logits, targets)
    out = np.zeros((len(x), len(METRICS), lm.num_layers, lm.num_heads))
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            pruned_logits, pruned_z = run({layer: capture.head_mask(lm, [head])})
            out[:, :, layer, head] = metrics(probs, pruned_logits.softmax(-1), z[layer],
                                             pruned_z[layer], target,
                                             lm.num_prefix_tokens).numpy()
    return out


def loop_strength(head: np.ndarray, grid: tuple[int, int],
                  patch_size: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """One head's (s, entropy, mean distance in px) from its G x G patch attention,
    patch by patch, straight from the SPEC's words."""
    gh, gw = grid
    k = max(gh, gw)
    ring_means: list[list[float]] = [[] for _ in range(k)]
    distances = []
    for i in range(gh * gw):
        r, c = divmod(i, gw)
        sums, counts = [0.0] * k, [0] * k
        weighted, mass = 0.0, 0.0
        for j in range(gh * gw):
            r2, c2 = divmod(j, gw)
            hop = max(abs(r2 - r), abs(c2 - c))
            sums[hop] += float(head[i, j])
            counts[hop] += 1
            weighted += float(head[i, j]) * math.hypot((r2 - r) * patch_size[0],
                                                      (c2 - c) * patch_size[1])
            mass += float(head[i, j])
        for hop in range(k):
            if counts[hop]:
                ring_means[hop].append(sums[hop] / counts[hop])
        if mass > 0:
            distances.append(weighted / mass)
    s = np.array([sum(v) / len(v) for v in ring_means])
    p = s / s.sum()
    entropy = -sum(x * math.log(x) for x in p if x > 0) / math.log(k) if k > 1 else 0.0
    return s, entropy, sum(distances) / len(distances)


def naive_curve(lm: LoadedModel, image: torch.Tensor, order: list[int], counts: list[int],
                start: torch.Tensor, fill: torch.Tensor, cls: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Probability and top-1 flag of `cls` after taking the first `k` patches of
    `order` from `fill` into `start`, one explicit patch loop per step (SPEC
    "Faithfulness of explanations")."""
    gw, (ph, pw) = lm.grid[1], lm.patch_size
    inputs = []
    for k in counts:
        x = start.clone()
        for patch in order[:k]:
            r, c = divmod(int(patch), gw)
            x[:, r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = fill[:, r * ph:(r + 1) * ph,
                                                                 c * pw:(c + 1) * pw]
        inputs.append(x)
    logits = capture.forward(lm, torch.stack(inputs)).logits  # explicit attention path
    return logits.softmax(-1)[:, cls].numpy(), (logits.argmax(-1) == cls).float().numpy()


def zero_head_by_hand(model: nn.Module, layer: int, head: int, x: torch.Tensor) -> torch.Tensor:
    """Independent pruning on an untouched timm model: zero the head's slice of the
    concatenated head outputs (the input of the output projection), which is what A = 0
    gives for A @ V. Returns the logits."""
    attn = model.blocks[layer].attn
    width = attn.head_dim

    def hook(_module, args):
        (inp,) = args
        inp = inp.clone()
        inp[..., head * width:(head + 1) * width] = 0
        return (inp,)

    handle = attn.proj.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            return model(x)
    finally:
        handle.remove()
