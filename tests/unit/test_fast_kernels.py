"""oneDNN kernels (core.model._kernels) against the stock PyTorch ones."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.model import _kernels as fast_kernels, capture
from testing.models import random_input



def test_the_pinned_pytorch_has_the_onednn_operator():
    assert fast_kernels._OP is not None


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Records each call of the oneDNN operator (its activation), then runs it."""
    seen: list[str] = []
    real = fast_kernels._OP

    def spy(x, weight, bias, activation, scalars, algorithm):
        seen.append(activation)
        return real(x, weight, bias, activation, scalars, algorithm)

    monkeypatch.setattr(fast_kernels, "_OP", spy)
    return seen


@torch.no_grad()
def test_linear_and_fused_gelu_equal_the_stock_kernels(calls):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 197, 192), torch.randn(768, 192), torch.randn(768)
    stock = F.linear(x, weight, bias)
    torch.testing.assert_close(fast_kernels.linear(x, weight, bias), stock,
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_kernels.linear(x, weight, bias, gelu=True),
                               F.gelu(stock), rtol=1e-5, atol=1e-5)
    assert calls == ["none", "gelu"]


def test_small_products_gradients_and_the_switch_use_the_stock_kernels(calls, monkeypatch):
    torch.manual_seed(0)
    weight = torch.randn(1024, 8, requires_grad=True)
    with torch.no_grad():
        fast_kernels.linear(torch.randn(4, 8), weight, None)  # far below MIN_MACS
    big = torch.randn(4096, 8)  # 4096 x 8 x 1024 multiply-adds: above MIN_MACS
    fast_kernels.linear(big, weight, None).sum().backward()  # gradients on
    assert weight.grad is not None
    monkeypatch.setattr(fast_kernels, "ENABLED", False)
    with torch.no_grad():
        fast_kernels.linear(big, weight, None)
    assert calls == []


@torch.no_grad()
def test_a_vit_under_onednn_matches_the_stock_forward_and_is_restored(deit_tiny, calls):
    lm, untouched = deit_tiny
    x = random_input(lm, batch=2)
    with fast_kernels.onednn(lm.model):
        with fast_kernels.onednn(lm.model):  # nested: the outer block keeps the modules
            fast = lm.model(x)
        again = lm.model(x)
    assert calls.count("gelu") == 2 * lm.num_layers  # every MLP fused, in both forwards
    torch.testing.assert_close(fast, untouched(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, fast)
    assert not any("forward" in vars(m) for m in lm.model.modules())
    assert all(type(m.forward).__name__ == "method" for m in lm.model.modules()
               if isinstance(m, nn.Linear))


@torch.no_grad()
def test_the_fast_logits_path_uses_onednn_and_agrees_with_the_instrumented_forward(
        deit_tiny, calls):
    lm, _ = deit_tiny
    x = random_input(lm, batch=2)
    fast = capture.logits(lm, x)
    assert "gelu" in calls
    torch.testing.assert_close(fast, capture.forward(lm, x, layers=()).logits,
                               rtol=1e-4, atol=1e-4)
