"""oneDNN kernels for the linear layers of forwards that need no gradients, on the CPU,
where measurement on the loaded model says they pay.

PyTorch runs a float32 ``nn.Linear`` on the CPU through MKL's GEMM. oneDNN, which
PyTorch also ships, can be faster for the same product, and it can apply the MLP's
GELU inside its first layer's GEMM instead of in a separate pass; the results agree
to float rounding. Whether it is faster depends on the machine, the model's widths
and the number of tokens per forward (on one EPYC it made the demo's forwards 1.5
times faster, on another it made deit_tiny's leave-one-out slower). So nothing here
is a constant: the first no-capture forward of a loaded model measures, on that
model's first block, both kernels at growing numbers of tokens
(:func:`measure`), and keeps the result with the model (``LoadedModel.kernels``):
oneDNN from the smallest measured size at and above which it was faster, or never.

:func:`onednn` switches a model over for the duration of a ``with`` block; the
no-capture paths (:func:`fast_path`: leave-one-out importance, the perturbation
tests) run inside one, while the instrumented ``core.model.capture.forward`` keeps
the stock kernels, so that the tests compare every fast path with a stock one.

Swapping changes the shared model: callers hold the model's lock
(``LoadedModel.lock``) for the whole block, and the block restores every module.
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from core.model._families import block_kwargs
from core.model.kernel_choice import KernelChoice

if TYPE_CHECKING:
    from core.model.loaded import LoadedModel

TOKENS_PER_FORWARD = 1 << 15  # tokens of one batched no-capture forward: bounds its memory;
# on the CPU larger batches were slower, not faster (they leave the cache: demo model,
# 2-core EPYC, 0.48 ms per image at 256 images per forward, 0.60 at 2,048, 0.86 at 4,096)
ROUNDS = 3  # timings per kernel and size (the best is kept), after one warm-up call
MAX_SECONDS = 0.05  # the sizes stop growing once one block call takes this long


def _onednn_op():
    """oneDNN's linear operator (with optional fused activation), or None where this
    PyTorch build has none."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


_OP = _onednn_op()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           gelu: bool = False, onednn_from: int | None = 0) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, then exact (erf) GELU if `gelu`; through oneDNN
    when it applies (CPU, float32, no gradients) and `x` has at least `onednn_from`
    rows (tokens; None: never)."""
    usable = (onednn_from is not None and _OP is not None and x.device.type == "cpu"
              and x.dtype == weight.dtype == torch.float32 and not torch.is_grad_enabled()
              and x.numel() >= onednn_from * x.shape[-1])
    if not usable:
        out = F.linear(x, weight, bias)
        return F.gelu(out) if gelu else out
    return _OP(x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else "")


Forward = Callable[[torch.Tensor], torch.Tensor]


def _gelu_mlp_forward(mlp: Mlp, onednn_from: int) -> Forward:
    """timm ``Mlp.forward`` with ``act(fc1(x))`` computed by one fused call."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = mlp.drop1(linear(x, mlp.fc1.weight, mlp.fc1.bias, True, onednn_from))
        return mlp.drop2(mlp.fc2(mlp.norm(x)))

    return forward


def _linear_forward(layer: nn.Linear, onednn_from: int) -> Forward:
    """``nn.Linear.forward`` through :func:`linear`."""
    return lambda x: linear(x, layer.weight, layer.bias, False, onednn_from)


@contextmanager
def _swapped(model: nn.Module, onednn_from: int | None) -> Iterator[None]:
    """Within the block, every ``nn.Linear`` of `model` runs :func:`linear`, and every
    timm ``Mlp`` with an exact GELU fuses it into its first layer, for inputs of at
    least `onednn_from` tokens (None: nothing is swapped). Nested blocks leave the
    modules to the outermost one."""
    swapped = []
    for module in model.modules() if onednn_from is not None else ():
        if "forward" in vars(module):
            continue
        if type(module) is nn.Linear:
            module.forward = _linear_forward(module, onednn_from)
        elif (type(module) is Mlp and type(module.fc1) is nn.Linear
              and type(module.act) is nn.GELU and module.act.approximate == "none"):
            module.forward = _gelu_mlp_forward(module, onednn_from)
        else:
            continue
        swapped.append(module)
    try:
        yield
    finally:
        for module in swapped:
            del module.forward


def first_onednn_size(seconds: dict[int, tuple[float, float]]) -> int | None:
    """The smallest measured size at and above which oneDNN was faster at every measured
    size (None: not faster at the largest)."""
    start = None
    for tokens in sorted(seconds, reverse=True):
        stock, fast = seconds[tokens]
        if fast >= stock:
            break
        start = tokens
    return start


@torch.no_grad()
def measure(lm: "LoadedModel") -> KernelChoice:
    """Time a copy of the model's first block (fused attention, as the fast path runs
    it; without the model's hooks, so that nothing a caller captures sees these calls)
    on the stock kernels and on oneDNN, on 1, 4, 16... images' tokens, until a call
    takes ``MAX_SECONDS`` or the size reaches ``TOKENS_PER_FORWARD``; interleaved, best of
    ``ROUNDS``. The block gets what the model's forward passes it
    (``core.model._families.block_kwargs``)."""
    if _OP is None or lm.device.type != "cpu":
        return KernelChoice(None, {})
    with lm.lock:
        block = copy.deepcopy(lm.model.blocks[0])
        extra = block_kwargs(lm.model, lm.num_tokens)[0]  # BEiT's bias, EVA's rope
    for module in block.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        vars(module).pop("forward", None)
    block.attn.fused_attn = True
    seconds: dict[int, tuple[float, float]] = {}
    generator = torch.Generator().manual_seed(0)
    images = 1
    while images * lm.num_tokens <= max(TOKENS_PER_FORWARD, lm.num_tokens):
        x = torch.randn(images, lm.num_tokens, lm.model.embed_dim, generator=generator)
        best = [float("inf"), float("inf")]
        for round_ in range(ROUNDS + 1):
            for k, onednn_from in enumerate((None, 0)):
                with _swapped(block, onednn_from):
                    start = time.perf_counter()
                    block(x, **extra)
                    took = time.perf_counter() - start
                if round_:  # the first round warms up
                    best[k] = min(best[k], took)
        seconds[images * lm.num_tokens] = (best[0], best[1])
        if max(best) >= MAX_SECONDS:
            break
        images *= 4
    return KernelChoice(first_onednn_size(seconds), seconds)


def kernel_choice(lm: "LoadedModel") -> KernelChoice:
    """The model's measured kernel choice, measured on the first call and kept."""
    with lm.lock:
        if lm.kernels is None:
            lm.kernels = measure(lm)
        return lm.kernels


@contextmanager
def onednn(lm: "LoadedModel") -> Iterator[None]:
    """Within the block, the model's linear layers run on oneDNN for inputs of at least
    the measured number of tokens (:func:`kernel_choice`; the stock kernels below it or
    where oneDNN was not faster). Callers hold the model's lock."""
    with _swapped(lm.model, kernel_choice(lm).onednn_from):
        yield


@contextmanager
def fast_path(lm: "LoadedModel", layers: Sequence[int]) -> Iterator[None]:
    """The fast path for forwards without gradients: timm's fused attention on `layers`
    (nothing can be captured or masked there), oneDNN linear layers and the GELU fused
    into the MLP's first layer. Holds the model's lock; everything is restored after."""
    with lm.lock:
        attns = lm.attention_modules
        saved = [attn.fused_attn for attn in attns]
        try:
            for layer in layers:
                attns[layer].fused_attn = True
            with onednn(lm):
                yield
        finally:
            for attn, flag in zip(attns, saved):
                attn.fused_attn = flag
