"""Naive references written straight from the SPEC's words, one loop per quantity,
against which the batched engine is tested (and timed in the benchmarks)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from core.analyses.importance import METRICS, metrics
from core.model import LoadedModel, capture
from core.model.targets import Explained, Targets


def masked_run(lm: LoadedModel, x: torch.Tensor, masks: dict[int, torch.Tensor] | None
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits and every layer's attention output z of one full instrumented forward
    with `masks` (layer -> mask), nothing reused."""
    z: list[torch.Tensor] = []
    with lm.lock:  # the hooks change the shared model for this call only
        handles = [attn.register_forward_hook(lambda _m, _a, output: z.append(output))
                   for attn in lm.attention_modules]
        try:
            return capture.forward(lm, x, masks=masks, layers=()).logits, z
        finally:
            for handle in handles:
                handle.remove()


def mask_gradients(lm: LoadedModel, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Independent ``A * dY/dA`` per layer (batch x layer x head x query x key), Y the
    logit of `classes` (batch,): the gradient of a ones mask applied to A (capture masks
    are keyed by layer, not by hook order)."""
    masks = {layer: torch.ones(len(x), lm.num_heads, lm.num_tokens, lm.num_tokens,
                               requires_grad=True) for layer in range(lm.num_layers)}
    with torch.enable_grad():
        out = capture.forward(lm, x, masks=masks, grad=True)
        out.logits.gather(1, classes[:, None]).sum().backward()
    return torch.stack([masks[layer].grad for layer in range(lm.num_layers)], dim=1)


def naive_leave_one_out(lm: LoadedModel, x: torch.Tensor, targets: Targets
                        ) -> np.ndarray:
    """Reference: prune one head at a time and run the whole model each time
    (L x H + 1 full instrumented forwards of the batch, nothing reused). Same output as
    ``core.analyses.importance.leave_one_out``."""
    logits, z = masked_run(lm, x, None)
    explained = Explained.of(logits, targets, lm.has_classes)
    out = np.zeros((len(x), len(METRICS), lm.num_layers, lm.num_heads))
    for layer in range(lm.num_layers):
        for head in range(lm.num_heads):
            pruned_logits, pruned_z = masked_run(lm, x, {layer: capture.head_mask(lm, [head])})
            out[:, :, layer, head] = metrics(explained, logits, pruned_logits, z[layer],
                                             pruned_z[layer], lm.num_prefix_tokens
                                             ).cpu().numpy()
    return out


def naive_pairs(lm: LoadedModel, x: torch.Tensor, targets: Targets,
                heads: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Reference for ``core.analyses.interactions.pair_effects`` on one image (`x`:
    1 x C x H x W) and its heads: one full masked forward per head and per pair, the
    pair's effect and its interaction (effect minus the two single effects, ``z``
    compared at the pair's later layer), metric x k x k each."""
    logits, z = masked_run(lm, x, None)
    explained = Explained.of(logits, targets, lm.has_classes)

    def effect(pruned: list[tuple[int, int]], at: int) -> np.ndarray:
        masks: dict[int, torch.Tensor] = {}
        for layer, head in pruned:
            masks[layer] = masks.get(layer, torch.ones(lm.num_heads, lm.num_tokens,
                                                       lm.num_tokens))
            masks[layer][head] = 0.0
        out_logits, out_z = masked_run(lm, x, masks)
        return metrics(explained, logits, out_logits, z[at], out_z[at],
                       lm.num_prefix_tokens).cpu().numpy()[0]

    k = len(heads)
    pair, interaction = np.zeros((2, len(METRICS), k, k))
    for i in range(k):
        pair[:, i, i] = effect([heads[i]], heads[i][0])
        for j in range(k):
            if i != j:
                at = max(heads[i][0], heads[j][0])
                pair[:, i, j] = effect([heads[i], heads[j]], at)
                interaction[:, i, j] = (pair[:, i, j] - effect([heads[i]], at)
                                        - effect([heads[j]], at))
    return pair, interaction


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


@torch.no_grad()
def naive_patch_ablation(model: nn.Module, x: torch.Tensor, cls: int,
                         groups: list[list[int]]) -> np.ndarray:
    """Reference for ``core.explain.ablation.patch_ablation`` on one image (1 x C x H x W)
    of an untouched timm ViT: one forward per group, its patch tokens deleted after the
    position embedding, through timm's own modules. Returns the per-patch drop of P[cls]."""

    def probability(drop: list[int]) -> float:
        h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        prefix = model.num_prefix_tokens
        kept = [t for t in range(h.shape[1]) if t < prefix or t - prefix not in drop]
        h = model.blocks(h[:, kept])
        return float(model.forward_head(model.norm(h)).softmax(-1)[0, cls])

    before = probability([])
    out = np.zeros(sum(len(g) for g in groups))
    for members in groups:
        out[members] = before - probability(members)
    return out


class _KeptPatches(nn.Module):
    """Stands in for EVA's patch dropout: keeps the tokens `kept` (prefix included) and
    returns the kept patches' indices, with which timm gathers the rotary embedding."""

    def __init__(self, kept: list[int], prefix: int) -> None:
        super().__init__()
        self.kept, self.patches = kept, torch.tensor([t - prefix for t in kept if t >= prefix])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, self.kept], self.patches.expand(len(x), -1)


@torch.no_grad()
def naive_positional_ablation(model: nn.Module, x: torch.Tensor, cls: int,
                              groups: list[list[int]]) -> np.ndarray:
    """Reference for ``core.explain.ablation.patch_ablation`` on one image (1 x C x H x W)
    of an untouched BEiT or EVA, whose attention is tied to token positions: one
    forward per group, its patch tokens deleted after the position embedding, every
    other token at its own position. EVA: timm's own patch-dropout path (the rotary
    embedding gathered by the kept patches). BEiT: its relative position biases indexed
    by the kept tokens. Returns the per-patch drop of P[cls]."""
    from timm.models.beit import Beit
    prefix = model.num_prefix_tokens
    tokens = prefix + sum(len(g) for g in groups)

    def probability(drop: list[int]) -> float:
        kept = [t for t in range(tokens) if t < prefix or t - prefix not in drop]
        index = torch.tensor(kept)
        handles, patched = [], []
        if isinstance(model, Beit):
            def cut(_m, _a, out):
                return out[..., index, :][..., index]
            handles.append(model.pos_drop.register_forward_hook(
                lambda _m, _a, out: out[:, index]))
            if model.rel_pos_bias is not None:
                handles.append(model.rel_pos_bias.register_forward_hook(cut))
            for block in model.blocks:
                if block.attn.relative_position_bias_table is not None:
                    full = block.attn._get_rel_pos_bias
                    block.attn._get_rel_pos_bias = lambda full=full: full()[..., index, :][
                        ..., index]
                    patched.append(block.attn)
        else:
            model.patch_drop = _KeptPatches(kept, prefix)
        try:
            return float(model(x).softmax(-1)[0, cls])
        finally:
            for handle in handles:
                handle.remove()
            for attn in patched:
                del attn._get_rel_pos_bias
            if not isinstance(model, Beit):
                model.patch_drop = None

    before = probability([])
    out = np.zeros(sum(len(g) for g in groups))
    for members in groups:
        out[members] = before - probability(members)
    return out


def gated_head_importance(model: nn.Module, x: torch.Tensor, target: int) -> np.ndarray:
    """Reference for ``core.analyses.importance_estimate`` on one image (1 x C x H x W)
    of an untouched timm ViT, as Michel et al. 2019 define it: a gate ``xi`` (1) on each
    head's output ``A @ V`` (the output projection's input), and ``|dL/dxi|`` with ``L``
    the cross-entropy of `target`. Returns layer x head."""
    device = next(model.parameters()).device
    gates = [torch.ones(block.attn.num_heads, device=device, requires_grad=True)
             for block in model.blocks]
    handles = []
    for block, gate in zip(model.blocks, gates):
        def gated(_module, args, gate=gate):
            (heads,) = args
            shape = heads.shape
            return heads.view(*shape[:-1], len(gate), -1).mul(gate[:, None]).view(shape)
        handles.append(block.attn.proj.register_forward_pre_hook(gated))
    try:
        loss = -model(x).log_softmax(-1)[0, target]
        grads = torch.autograd.grad(loss, gates)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(grads).abs().cpu().numpy()


def per_method_faithfulness(lm: LoadedModel, x: torch.Tensor, maps: torch.Tensor,
                            classes: torch.Tensor) -> dict[str, np.ndarray]:
    """The faithfulness curves of maps (image, method, patch) as computed before the
    methods were stacked: per method, one forward series per curve (removed, revealed,
    least removed), every input run even where two are the same. The "before" of
    ``bench.faithfulness`` and the reference of the stacked
    ``core.analyses.faithfulness.evaluate`` (same results to 1e-6)."""
    from core.analyses import faithfulness as f
    g = maps.shape[-1]
    del_counts, pert_counts = f.deletion_counts(g), f.perturbation_counts(g)
    shared = sorted(set(del_counts) | set(pert_counts))
    zeros, blur = torch.zeros_like(x), f.blurred(lm, x)

    def series(start: torch.Tensor, fill: torch.Tensor, ranks: torch.Tensor,
               counts: list[int]) -> torch.Tensor:
        taken = f.patch_pixels(lm, ranks[:, None, :] < torch.tensor(counts)[None, :, None])
        inputs = start[:, None] * (1 - taken.float()) + fill[:, None] * taken.float()
        chunk = max(1, 2**21 // x[0].numel())  # 2**21 input values per forward, as before
        flat = inputs.flatten(0, 1)
        out = torch.cat([capture.logits(lm, part) for part in flat.split(chunk)])
        return out.reshape(len(x), len(counts), -1)

    curves: dict[str, list[np.ndarray]] = {"deletion_curve": [], "insertion_curve": [],
                                           "positive_curve": [], "negative_curve": []}
    at = {c: i for i, c in enumerate(shared)}
    for m in range(maps.shape[1]):
        most, least = f.ranks(maps[:, m]), f.ranks(-maps[:, m])
        removed = series(x, zeros, most, shared)
        prob = removed.softmax(-1)[torch.arange(len(x)), :, classes]
        curves["deletion_curve"].append(prob[:, [at[c] for c in del_counts]].numpy())
        top1 = removed.argmax(-1) == classes[:, None]
        curves["positive_curve"].append(top1[:, [at[c] for c in pert_counts]].float().numpy())
        inserted = series(blur, x, most, del_counts)
        curves["insertion_curve"].append(
            inserted.softmax(-1)[torch.arange(len(x)), :, classes].numpy())
        kept = series(x, zeros, least, pert_counts)
        curves["negative_curve"].append((kept.argmax(-1) == classes[:, None]).float().numpy())
    return {name: np.stack(values, axis=1) for name, values in curves.items()}


def check_forward_from(lm: LoadedModel, untouched: nn.Module, x: torch.Tensor) -> None:
    """``core.model._rerun.forward_from`` from every layer against the untouched timm
    model: the logits and the layer's attention output, unmasked and with that output
    given (asserts)."""
    from core.model._rerun import forward_from, states
    with torch.no_grad():
        expected = untouched(x)
    base = states(lm, x)
    torch.testing.assert_close(base.logits, expected, rtol=1e-5, atol=1e-5)
    for layer in range(lm.num_layers):
        logits, z = forward_from(lm, base.inputs[layer], layer)
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(z, base.outputs[layer], rtol=1e-5, atol=1e-5)
        given, _ = forward_from(lm, base.inputs[layer], layer, attn_output=base.outputs[layer])
        torch.testing.assert_close(given, expected, rtol=1e-5, atol=1e-5)
