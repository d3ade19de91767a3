"""oneDNN kernels (core.model._kernels) against the stock PyTorch ones, and their
choice by measurement on the loaded model."""
from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.model import _kernels as fast_kernels, capture, load_model
from core.model._kernels import first_onednn_size
from core.model.kernel_choice import KernelChoice
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


def test_small_inputs_gradients_and_never_use_the_stock_kernels(calls):
    torch.manual_seed(0)
    weight = torch.randn(1024, 8, requires_grad=True)
    with torch.no_grad():
        fast_kernels.linear(torch.randn(4, 8), weight, None, onednn_from=5)  # 4 rows < 5
        fast_kernels.linear(torch.randn(4, 8), weight, None, onednn_from=None)
    fast_kernels.linear(torch.randn(4, 8), weight, None, onednn_from=0).sum().backward()
    assert weight.grad is not None  # gradients on: stock
    assert calls == []
    with torch.no_grad():
        fast_kernels.linear(torch.randn(2, 3, 8), weight, None, onednn_from=6)  # 6 rows
    assert calls == ["none"]


def test_onednn_is_chosen_from_the_smallest_size_where_it_wins_at_every_larger_one():
    assert first_onednn_size({50: (1.0, 2.0), 200: (3.0, 2.0), 800: (9.0, 6.0)}) == 200
    assert first_onednn_size({50: (1.0, 0.5), 200: (3.0, 4.0), 800: (9.0, 6.0)}) == 800
    assert first_onednn_size({50: (1.0, 0.5), 200: (3.0, 2.0)}) == 50
    assert first_onednn_size({50: (1.0, 0.5), 200: (3.0, 3.0)}) is None  # a tie: stock
    assert first_onednn_size({}) is None


def test_the_choice_is_measured_once_per_loaded_model_and_leaves_it_as_loaded(monkeypatch):
    lm = load_model("demo", device="cpu")
    measured = []
    real = fast_kernels.measure
    monkeypatch.setattr(fast_kernels, "measure", lambda m: measured.append(m) or real(m))
    x = random_input(lm, batch=3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(capture.logits(lm, x)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    capture.logits(lm, x)
    assert measured == [lm]  # four concurrent first calls, then one more: one measurement
    choice = lm.kernels
    sizes = sorted(choice.seconds)
    assert sizes[0] == lm.num_tokens and all(b == 4 * a for a, b in zip(sizes, sizes[1:]))
    assert choice.onednn_from == first_onednn_size(choice.seconds)
    assert all(s > 0 and o > 0 for s, o in choice.seconds.values())
    assert "tokens" in choice.describe()
    assert not any(a.fused_attn for a in lm.attention_modules)
    assert not any("forward" in vars(m) for m in lm.model.modules())
    for r in results:
        torch.testing.assert_close(r, capture.forward(lm, x).logits, rtol=1e-5, atol=1e-5)


def test_measuring_runs_none_of_the_models_hooks():
    """A caller that captures block inputs (``core.model._rerun.states``) and triggers
    the first measurement must not capture the measurement's calls."""
    lm = load_model("demo", device="cpu")
    seen = []
    handles = [lm.model.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(1)),
               lm.model.blocks[0].attn.register_forward_hook(lambda m, a, o: seen.append(2))]
    try:
        fast_kernels.kernel_choice(lm)
    finally:
        for handle in handles:
            handle.remove()
    assert seen == [] and lm.kernels is not None and lm.kernels.seconds


def test_off_the_cpu_nothing_is_measured(deit_tiny, monkeypatch):
    lm, _ = deit_tiny
    monkeypatch.setattr(lm, "device", torch.device("meta"))
    assert fast_kernels.measure(lm) == KernelChoice(None, {})


@torch.no_grad()
def test_a_vit_under_onednn_matches_the_stock_forward_and_is_restored(deit_tiny, calls,
                                                                     monkeypatch):
    lm, untouched = deit_tiny
    monkeypatch.setattr(lm, "kernels", KernelChoice(0, {}))  # oneDNN at every size
    x = random_input(lm, batch=2)
    with fast_kernels.onednn(lm):
        with fast_kernels.onednn(lm):  # nested: the outer block keeps the modules
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
        deit_tiny, calls, monkeypatch):
    lm, _ = deit_tiny
    monkeypatch.setattr(lm, "kernels", KernelChoice(2 * lm.num_tokens, {}))
    x = random_input(lm, batch=2)
    fast = capture.logits(lm, x)
    assert "gelu" in calls
    torch.testing.assert_close(fast, capture.forward(lm, x, layers=()).logits,
                               rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_below_the_chosen_size_the_fast_path_keeps_the_stock_kernels(deit_tiny, calls,
                                                                     monkeypatch):
    lm, _ = deit_tiny
    monkeypatch.setattr(lm, "kernels", KernelChoice(2 * lm.num_tokens + 1, {}))
    capture.logits(lm, random_input(lm, batch=2))
    monkeypatch.setattr(lm, "kernels", KernelChoice(None, {}))
    capture.logits(lm, random_input(lm, batch=2))
    assert calls == []
