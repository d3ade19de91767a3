"""Attention capture with head/region masks (SPEC "Capturing attention",
"Head pruning").

Every timm ``Attention`` of a loaded model runs its explicit (non-fused) path:
``softmax(q k^T) -> attn_drop -> @ v``. We wrap ``attn_drop`` with a private
tap that records the post-softmax matrix ``A`` and multiplies it by a mask
*before* ``A @ V``, so one forward captures all L x H matrices of a batch and
pruning needs no copy of timm's code. The public API is :func:`forward` and
the mask builders.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn

from core.fast_kernels import onednn
from core.head_rows import final_block_rows, rows_read_by_head
from core.models import LoadedModel

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

_LOCK = threading.RLock()  # the taps hold per-call state: one forward at a time per process


class _Tap(nn.Module):
    """Stands in for ``attn_drop``: records A, then applies the layer's mask."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.mask: torch.Tensor | None = None
        self.record: list[torch.Tensor] | None = None

    def forward(self, attn: torch.Tensor) -> torch.Tensor:
        attn = self.inner(attn)
        if self.record is not None:
            if attn.requires_grad:
                attn.retain_grad()
            self.record.append(attn)
        return attn if self.mask is None else attn * self.mask


def _taps(lm: LoadedModel) -> list[_Tap]:
    """The model's taps, installed on first use."""
    taps = []
    for attn in lm.attention_modules:
        if not isinstance(attn.attn_drop, _Tap):
            attn.attn_drop = _Tap(attn.attn_drop)
        taps.append(attn.attn_drop)
    return taps


@dataclass
class Capture:
    """Output of one instrumented forward."""

    logits: torch.Tensor  # B x classes
    per_layer: list[torch.Tensor]  # B x H x T x T each; with grad=True their .grad is kept
    layers: tuple[int, ...]  # which layers were captured, in order

    @property
    def attention(self) -> torch.Tensor:
        """B x L' x H x T x T, detached, for the captured layers."""
        return torch.stack([a.detach() for a in self.per_layer], dim=1)


@contextmanager
def _instrumented(lm: LoadedModel, masks: dict[int, torch.Tensor] | None,
                  layers: Sequence[int]) -> Iterator[dict[int, list[torch.Tensor]]]:
    records: dict[int, list[torch.Tensor]] = {}
    with _LOCK:
        taps = _taps(lm)
        try:
            for layer, mask in (masks or {}).items():
                taps[layer].mask = mask.to(lm.device)
            for layer in layers:
                records[layer] = taps[layer].record = []
            yield records
        finally:
            for tap in taps:
                tap.mask, tap.record = None, None


def forward(lm: LoadedModel, x: torch.Tensor, masks: dict[int, torch.Tensor] | None = None,
            layers: Sequence[int] | None = None, grad: bool = False) -> Capture:
    """Run the model on a batch `x` (B x C x H x W), capturing attention.

    masks: ``{layer: m}`` with ``m`` multiplicative and broadcastable to
        B x H x T x T (one mask per image is allowed), applied before ``A @ V``.
    layers: which layers to capture (default all; ``()`` captures none).
    grad: keep the graph so that ``per_layer[i].grad`` can be read after a
        backward pass of the logits.
    """
    layers = tuple(range(lm.num_layers)) if layers is None else tuple(layers)
    with _instrumented(lm, masks, layers) as records, torch.set_grad_enabled(grad):
        logits = lm.model(x.to(lm.device))
    return Capture(logits=logits, per_layer=[records[layer][0] for layer in layers],
                   layers=layers)


def region_mask(lm: LoadedModel, regions: Sequence[str]) -> torch.Tensor:
    """T x T multiplicative mask zeroing `regions` (SPEC "Head pruning").

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
    """H x T x T mask pruning `heads` of one layer in pruning `mode` (0-5)."""
    mask = torch.ones(lm.num_heads, lm.num_tokens, lm.num_tokens)
    pruned = region_mask(lm, PRUNING_MODES[mode])
    for h in heads:
        mask[h] = pruned
    return mask


def logits(lm: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    """Logits only, no capture, on the fast path (:func:`_fast`; agrees with
    :func:`forward` to float rounding). For the many forward passes of perturbation
    tests, where no attention is needed."""
    with _LOCK, torch.no_grad(), _fast(lm, range(lm.num_layers)):
        return lm.model(x.to(lm.device))

# --- Re-running the model from a layer (SPEC "Head pruning": leave-one-out may reuse the
# unpruned activations before the pruned layer) ---------------------------------------

@dataclass
class States:
    """Activations of one unmasked forward, to re-run the model from any layer."""

    logits: torch.Tensor  # B x classes
    inputs: list[torch.Tensor]  # per layer: B x T x D, the block's input (hidden states)
    heads: list[torch.Tensor]  # per layer: B x T x (H * head dim), the head outputs A @ V
    # side by side (the input of the attention module's output projection)
    outputs: list[torch.Tensor]  # per layer: B x T x D, the attention module's output z
    # (after the output projection, before the residual add)


def states(lm: LoadedModel, x: torch.Tensor) -> States:
    """One forward of `x` on the fast path (:func:`_fast`, nothing masked or captured)
    keeping every block's input, head outputs and attention output."""
    kept: dict[str, list[torch.Tensor]] = {"inputs": [], "heads": [], "outputs": []}
    handles = []
    for block in lm.model.blocks:
        handles += [
            block.register_forward_pre_hook(lambda _m, args: kept["inputs"].append(args[0])),
            block.attn.proj.register_forward_pre_hook(
                lambda _m, args: kept["heads"].append(args[0])),
            block.attn.register_forward_hook(lambda _m, _a, out: kept["outputs"].append(out))]
    try:
        with _LOCK, torch.no_grad(), _fast(lm, range(lm.num_layers)):
            logits = lm.model(x.to(lm.device))
    finally:
        for handle in handles:
            handle.remove()
    return States(logits=logits, **kept)


@contextmanager
def _fast(lm: LoadedModel, layers: Sequence[int]) -> Iterator[None]:
    """The fast path for forwards without gradients: fused attention on `layers`
    (nothing can be captured or masked there) and oneDNN linear layers
    and GELU fused into the MLP's first layer (``core.fast_kernels``)."""
    attns = lm.attention_modules
    saved = [attn.fused_attn for attn in attns]
    try:
        for layer in layers:
            attns[layer].fused_attn = True
        with onednn(lm.model):
            yield
    finally:
        for attn, flag in zip(attns, saved):
            attn.fused_attn = flag


class _Given(nn.Module):
    """Stands in for an attention module whose output is already known."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, *_args, **_kwargs) -> torch.Tensor:
        return self.output


def forward_from(lm: LoadedModel, hidden: torch.Tensor, start: int,
                 mask: torch.Tensor | None = None, attn_output: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run blocks `start`, `start` + 1, ... and the head on `hidden`, the input of block
    `start` (B x T x D), without gradients. Returns the logits and block `start`'s
    attention output z (B x T x D).

    mask: multiplicative mask of layer `start` (as in :func:`forward`).
    attn_output: block `start`'s attention output, when already known (its attention
        is then not computed).
    Runs on the fast path (:func:`_fast`: later layers with timm's fused attention),
    and the final block computes only the token rows the head reads where
    ``core.head_rows`` allows it.
    """
    model = lm.model
    rows = rows_read_by_head(model)
    block = model.blocks[start]
    z: list[torch.Tensor] = [] if attn_output is None else [attn_output.to(lm.device)]
    with _LOCK:
        original = block.attn
        handle = original.register_forward_hook(lambda _m, _a, out: z.append(out))
        try:
            with (_instrumented(lm, None if mask is None else {start: mask}, ()),
                  torch.no_grad(), _fast(lm, range(start + 1, lm.num_layers))):
                if attn_output is not None:
                    block.attn = _Given(z[0])
                h = hidden.to(lm.device)
                for layer in range(start, lm.num_layers):
                    given = z[0] if layer == start and attn_output is not None else None
                    if (layer == lm.num_layers - 1 and rows is not None
                            and (layer > start or given is not None)):
                        h = final_block_rows(model.blocks[layer], h, rows, given)
                    else:
                        h = model.blocks[layer](h)
                logits = model.forward_head(model.norm(h))
        finally:
            block.attn = original
            handle.remove()
    return logits, z[0]
