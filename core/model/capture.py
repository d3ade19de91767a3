"""Attention capture with head/region masks (SPEC "Capturing attention",
"Head pruning").

Every timm ``Attention`` of a loaded model runs its explicit (non-fused) path:
``softmax(q k^T) -> attn_drop -> @ v``. For the duration of one call, a private
tap stands in for ``attn_drop``: it records the post-softmax matrix ``A`` and
multiplies it by a mask *before* ``A @ V``, so one forward captures all L x H
matrices of a batch and pruning needs no copy of timm's code. The taps are
installed under the model's lock and removed in ``finally`` (hooks live for one
call, as in TransformerLens), so a shared model is never left modified.

Public: :func:`forward`, :func:`logits`, the mask builders and :func:`cls_attention`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from core.model._kernels import fast_path
from core.model.loaded import LoadedModel

# Pruning modes of SPEC "Head pruning": the regions each mode zeroes.
REGIONS = ("cls_cls", "cls_patch", "patch_cls", "patch_patch")
PRUNING_MODES: dict[int, tuple[str, ...]] = {
    0: (),
    1: REGIONS,
    2: ("cls_cls",),
    3: ("cls_patch", "patch_cls"),
    4: ("patch_patch",),
    5: ("cls_cls", "cls_patch", "patch_cls"),
}
MODE_NAMES = {0: "none (original)", 1: "whole head", 2: "CLS->CLS only",
              3: "CLS<->patches only", 4: "patches->patches only", 5: "all CLS-related"}


class _Stack:
    """Where a capture without gradients writes A: one batch x layer x head x query x
    key tensor, allocated when the first captured layer runs, each layer written in
    place (so that a capture holds the attention once, not once per layer and once
    stacked: 540 MB, not 1,080, for one image of a DINOv2-S/14 at 518 px)."""

    def __init__(self, layers: Sequence[int]) -> None:
        self.slot = {layer: i for i, layer in enumerate(layers)}
        self.data: torch.Tensor | None = None

    def put(self, layer: int, attn: torch.Tensor) -> torch.Tensor:
        if self.data is None:
            self.data = attn.new_empty(attn.shape[0], len(self.slot), *attn.shape[1:])
        view = self.data[:, self.slot[layer]]
        view.copy_(attn)
        return view


class _Tap(nn.Module):
    """Stands in for ``attn_drop`` during one call: records A, then applies the mask."""

    def __init__(self, inner: nn.Module, mask: torch.Tensor | None, record: bool,
                 layer: int, stack: _Stack | None, renormalise: bool = False) -> None:
        super().__init__()
        self.inner = inner
        self.mask, self.renormalise = mask, renormalise
        self.record: list[torch.Tensor] | None = [] if record else None
        self.layer, self.stack = layer, stack

    def forward(self, attn: torch.Tensor) -> torch.Tensor:
        attn = self.inner(attn)
        if self.record is not None:
            if attn.requires_grad:
                attn.retain_grad()
                self.record.append(attn)
            else:
                self.record.append(self.stack.put(self.layer, attn))
        if self.mask is None:
            return attn
        weighted = attn * self.mask
        return weighted / weighted.sum(-1, keepdim=True) if self.renormalise else weighted


@contextmanager
def _tapped(lm: LoadedModel, masks: dict[int, torch.Tensor] | None,
            layers: Sequence[int], stack: _Stack | None = None, renormalise: bool = False
            ) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Taps on the masked and the captured layers for the block; yields the records
    (layer -> list of captured A; without gradients, views of `stack`). Holds the
    model's lock; the taps are gone after."""
    masks = masks or {}
    stack = stack or _Stack(layers)
    with lm.lock:
        attns = lm.attention_modules
        originals = [attn.attn_drop for attn in attns]
        records: dict[int, list[torch.Tensor]] = {}
        try:
            for layer in sorted(set(masks) | set(layers)):
                mask = masks.get(layer)
                tap = _Tap(originals[layer], None if mask is None else mask.to(lm.device),
                           record=layer in layers, layer=layer, stack=stack,
                           renormalise=renormalise)
                attns[layer].attn_drop = tap
                if tap.record is not None:
                    records[layer] = tap.record
            yield records
        finally:
            for attn, original in zip(attns, originals):
                attn.attn_drop = original


@dataclass
class Capture:
    """Output of one instrumented forward."""

    logits: torch.Tensor  # batch x output (class logits, or the embedding)
    per_layer: list[torch.Tensor]  # batch x head x query x key each; with grad=True their
    # .grad is kept
    layers: tuple[int, ...]  # which layers were captured, in order
    stacked: torch.Tensor | None = None  # without gradients: what per_layer are views of

    @property
    def attention(self) -> torch.Tensor:
        """batch x layer x head x query x key, detached, for the captured layers (without
        gradients the captured tensor itself, not a copy)."""
        if self.stacked is not None:
            return self.stacked
        return torch.stack([a.detach() for a in self.per_layer], dim=1)

    def select(self, images: list[int]) -> "Capture":
        """The capture of some images of the batch (their positions, a copy)."""
        if self.stacked is None:
            return Capture(self.logits[images], [a[images] for a in self.per_layer],
                           self.layers)
        stacked = self.stacked[images]
        return Capture(self.logits[images], list(stacked.unbind(1)), self.layers, stacked)


def forward(lm: LoadedModel, x: torch.Tensor, masks: dict[int, torch.Tensor] | None = None,
            layers: Sequence[int] | None = None, grad: bool = False,
            renormalise: bool = False) -> Capture:
    """Run the model on a batch `x` (batch x channel x height x width), capturing attention.

    masks: ``{layer: m}`` with ``m`` multiplicative and broadcastable to
        batch x head x query x key (one mask per image is allowed), applied before ``A @ V``.
    layers: which layers to capture (default all; ``()`` captures none).
    grad: keep the graph so that ``per_layer[i].grad`` can be read after a
        backward pass of the logits (run that backward under ``lm.lock`` too).
    renormalise: each masked row is divided by its sum, ``A' = A m / sum_k A_k m_k``
        (the attention prompt, SPEC "Prompting at inference").
    """
    layers = tuple(range(lm.num_layers)) if layers is None else tuple(layers)
    stack = _Stack(layers)
    with _tapped(lm, masks, layers, stack, renormalise) as records, \
            torch.set_grad_enabled(grad):
        out = lm.model(x.to(lm.device))
    return Capture(logits=out, per_layer=[records[layer][0] for layer in layers], layers=layers,
                   stacked=None if grad or not layers else stack.data)


def logits(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Logits only (batch x class), nothing captured, on the fast path
    (``core.model._kernels.fast_path``; agrees with :func:`forward` to float rounding).
    For the many forward passes of perturbation tests, where no attention is needed."""
    with lm.lock, torch.no_grad(), fast_path(lm, range(lm.num_layers)):
        return lm.model(x.to(lm.device))


def region_mask(lm: LoadedModel, regions: Sequence[str]) -> torch.Tensor:
    """query x key multiplicative mask zeroing `regions` (SPEC "Head pruning").

    Every prefix token (CLS, distillation, registers) counts as CLS.
    """
    p, t = lm.num_prefix_tokens, lm.num_tokens
    mask = torch.ones(t, t)
    spans = {"cls": slice(0, p), "patch": slice(p, t)}
    for region in regions:
        rows, cols = region.split("_")
        mask[spans[rows], spans[cols]] = 0.0
    return mask


def head_mask(lm: LoadedModel, heads: Sequence[int], mode: int = 1) -> torch.Tensor:
    """head x query x key mask pruning `heads` of one layer in pruning `mode` (0-5)."""
    mask = torch.ones(lm.num_heads, lm.num_tokens, lm.num_tokens)
    pruned = region_mask(lm, PRUNING_MODES[mode])
    for h in heads:
        mask[h] = pruned
    return mask


def cls_attention(attention: torch.Tensor, num_prefix_tokens: int) -> torch.Tensor:
    """The CLS row over the patch tokens: (..., query, key) -> (..., patch)."""
    return attention[..., 0, num_prefix_tokens:]
