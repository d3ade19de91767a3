"""oneDNN kernels for the linear layers of forwards that need no gradients, on the CPU.

PyTorch runs a float32 ``nn.Linear`` on the CPU through MKL's GEMM. oneDNN, which
PyTorch also ships, can be much faster for the same product, and it can apply the
MLP's GELU inside its first layer's GEMM instead of in a separate pass. On this
project's AMD EPYC test machine, deit_tiny's blocks on 12 images take 200 ms with
the stock kernels, 158 ms with oneDNN linear layers and 115 ms with the GELU fused
too; the results agree to float rounding (bit for bit there).

:func:`onednn` switches a model over for the duration of a ``with`` block; the
no-capture paths (:func:`fast_path`: leave-one-out importance, the perturbation
tests) run inside one, while the instrumented ``core.model.capture.forward`` keeps
the stock kernels, so that the tests compare every fast path with a stock one.
Small products stay on ``F.linear``, where oneDNN's call overhead outweighs the
gain. ``VIT_EXPLORER_ONEDNN=0`` switches all of this off.

Swapping changes the shared model: callers hold the model's lock
(``LoadedModel.lock``) for the whole block, and the block restores every module.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

if TYPE_CHECKING:
    from core.model.loading import LoadedModel

MIN_MACS = 1 << 21  # multiply-adds below which F.linear is faster (measured: 0.6 M slower,
# 6.5 M faster on the test machine)
ENABLED = os.environ.get("VIT_EXPLORER_ONEDNN", "1") != "0"


def _onednn_op():
    """oneDNN's linear operator (with optional fused activation), or None where this
    PyTorch build has none."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


_OP = _onednn_op()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           gelu: bool = False) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, then exact (erf) GELU if `gelu`; through oneDNN
    when that applies and pays."""
    usable = (ENABLED and _OP is not None and x.device.type == "cpu"
              and x.dtype == weight.dtype == torch.float32 and not torch.is_grad_enabled()
              and x.numel() * weight.shape[0] >= MIN_MACS)
    if not usable:
        out = F.linear(x, weight, bias)
        return F.gelu(out) if gelu else out
    return _OP(x, weight, bias, "gelu" if gelu else "none", [], "none" if gelu else "")


Forward = Callable[[torch.Tensor], torch.Tensor]


def _gelu_mlp_forward(mlp: Mlp) -> Forward:
    """timm ``Mlp.forward`` with ``act(fc1(x))`` computed by one fused call."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = mlp.drop1(linear(x, mlp.fc1.weight, mlp.fc1.bias, gelu=True))
        return mlp.drop2(mlp.fc2(mlp.norm(x)))

    return forward


def _linear_forward(layer: nn.Linear) -> Forward:
    """``nn.Linear.forward`` through :func:`linear`."""
    return lambda x: linear(x, layer.weight, layer.bias)


@contextmanager
def onednn(model: nn.Module) -> Iterator[None]:
    """Within the block, every ``nn.Linear`` of `model` runs :func:`linear`, and every
    timm ``Mlp`` with an exact GELU fuses it into its first layer. Nested blocks leave
    the modules to the outermost one."""
    swapped = []
    for module in model.modules():
        if "forward" in vars(module):
            continue
        if type(module) is nn.Linear:
            module.forward = _linear_forward(module)
        elif (type(module) is Mlp and type(module.fc1) is nn.Linear
              and type(module.act) is nn.GELU and module.act.approximate == "none"):
            module.forward = _gelu_mlp_forward(module)
        else:
            continue
        swapped.append(module)
    try:
        yield
    finally:
        for module in swapped:
            del module.forward


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
            with onednn(lm.model):
                yield
        finally:
            for attn, flag in zip(attns, saved):
                attn.fused_attn = flag
