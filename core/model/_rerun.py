"""Re-running the model from a layer (SPEC "Head pruning": leave-one-out may reuse
the unpruned activations before the pruned layer). Private to the engine: used by
the leave-one-out and partial-pruning analyses.

Both functions hold the model's lock for the whole call; the hooks they register
and the module they swap in are removed in ``finally``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from core.model._families import block_kwargs, heads_module, positional_attention
from core.model._final_rows import final_block_rows, rows_read_by_head
from core.model._kernels import fast_path
from core.model.capture import _tapped
from core.model.loaded import LoadedModel


@dataclass
class States:
    """Activations of one unmasked forward, to re-run the model from any layer."""

    logits: torch.Tensor  # batch x class
    inputs: list[torch.Tensor]  # per layer: batch x token x width, the block's input
    heads: list[torch.Tensor]  # per layer: batch x token x (head * head width), the head
    # outputs A @ V side by side, as read by ``_families.heads_module`` (the input of the
    # output projection, or of the sub-norm before it); ``_families.output_from_heads``
    # maps them to z
    outputs: list[torch.Tensor]  # per layer: batch x token x width, the attention module's
    # output z (after the output projection, before the residual add)


def states(lm: LoadedModel, x: torch.Tensor) -> States:
    """One forward of `x` on the fast path (nothing masked or captured) keeping every
    block's input, head outputs and attention output."""
    kept: dict[str, list[torch.Tensor]] = {"inputs": [], "heads": [], "outputs": []}
    with lm.lock:
        handles = []
        try:
            for block in lm.model.blocks:
                handles += [
                    block.register_forward_pre_hook(
                        lambda _m, args: kept["inputs"].append(args[0])),
                    heads_module(block.attn).register_forward_pre_hook(
                        lambda _m, args: kept["heads"].append(args[0])),
                    block.attn.register_forward_hook(
                        lambda _m, _a, out: kept["outputs"].append(out))]
            with torch.no_grad(), fast_path(lm, range(lm.num_layers)):
                logits = lm.model(x.to(lm.device))
        finally:
            for handle in handles:
                handle.remove()
    return States(logits=logits, **kept)


class _Given(nn.Module):
    """Stands in for an attention module whose output is already known."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output

    def forward(self, *_args, **_kwargs) -> torch.Tensor:
        return self.output


def _leave_out(model: nn.Module, h: torch.Tensor, present: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`h` (batch x token x width) without its absent tokens, and no key bias; or, for a
    model with positional attention, `h` whole and the additive key bias (batch x 1 x 1
    x token) that leaves them out (see :func:`forward_from`)."""
    if present is None:
        return h, None
    present = present.to(h.device)
    if not positional_attention(model):
        return h[present].view(len(h), -1, h.shape[-1]), None
    bias = torch.zeros(present.shape, dtype=h.dtype, device=h.device)
    return h, bias.masked_fill(~present, float("-inf"))[:, None, None, :]


def forward_from(lm: LoadedModel, hidden: torch.Tensor, start: int,
                 mask: torch.Tensor | None = None, attn_output: torch.Tensor | None = None,
                 masks: dict[int, torch.Tensor] | None = None, keep: Sequence[int] = (),
                 present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run blocks `start`, `start` + 1, ... and the head on `hidden`, the input of block
    `start` (batch x token x width), without gradients. Returns the logits and block
    `start`'s attention output z (batch x token x width), or, with `keep`, the attention
    outputs of those layers stacked (layer x batch x token x width, in `keep`'s order).

    mask: multiplicative mask of layer `start` (as in ``capture.forward``).
    masks: multiplicative masks of any layers from `start` on (layer -> mask).
    attn_output: block `start`'s attention output, when already known (its attention
        is then not computed).
    present: batch x token, bool, the same number of True per row: the False tokens are
        left out of the sequence from block `start` on. The sequence is shortened, or,
        where attention is tied to the full grid (``_families.positional_attention``:
        BEiT's bias, EVA's rope), they are masked out as keys in every block (-inf before
        the softmax; each kept token computes exactly what it would without them, at its
        own position) and dropped before the head.
    Unmasked later layers run on the fast path (timm's fused attention), and the final
    block computes only the token rows the head reads where ``_final_rows`` allows it
    (not when its attention output is kept). Each block gets what the model's own
    forward passes it (``_families.block_kwargs``); a sequence shorter than the model's
    raises ValueError for a model whose attention is tied to the full grid.
    """
    model = lm.model
    block = model.blocks[start]
    masks = dict(masks or {})
    if mask is not None:
        masks[start] = mask
    if any(layer < start for layer in masks) or any(layer < start for layer in keep):
        raise ValueError(f"masks and kept outputs must be at layer {start} or later")
    kept_layers = list(keep) or [start]
    z: dict[int, torch.Tensor] = {} if attn_output is None else {start: attn_output.to(lm.device)}
    with lm.lock:
        # under the lock: another call may have swapped the final block's attention
        rows = rows_read_by_head(model)
        original = block.attn
        handles = [model.blocks[layer].attn.register_forward_hook(
            lambda _m, _a, out, layer=layer: z.__setitem__(layer, out))
            for layer in set(kept_layers) if not (layer == start and attn_output is not None)]
        fused = [layer for layer in range(start + 1, lm.num_layers) if layer not in masks]
        last = lm.num_layers - 1
        try:
            with (_tapped(lm, masks, ()), torch.no_grad(), fast_path(lm, fused)):
                h = hidden.to(lm.device)
                h, key_bias = _leave_out(model, h, present)
                extra = block_kwargs(model, h.shape[1], key_bias)  # BEiT's bias, EVA's rope
                if attn_output is not None:
                    block.attn = _Given(z[start])
                for layer in range(start, lm.num_layers):
                    given = z[start] if layer == start and attn_output is not None else None
                    if (layer == last and rows is not None and last not in kept_layers
                            and last not in masks and (layer > start or given is not None)):
                        h = final_block_rows(model.blocks[layer], h, rows, given)
                    else:
                        h = model.blocks[layer](h, **extra[layer])
                if key_bias is not None:
                    h = h[present.to(h.device)].view(len(h), -1, h.shape[-1])
                logits = model.forward_head(model.norm(h))
        finally:
            block.attn = original
            for handle in handles:
                handle.remove()
    if not keep:
        return logits, z[start]
    return logits, torch.stack([z[layer] for layer in keep])
