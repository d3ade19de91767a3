"""Cost of attention capture: the instrumented forward (explicit attention, all
L x H matrices kept) against the untouched timm model (fused attention), same
batch, same run. Prints the overhead ratio per model; last lines are headlines."""
from __future__ import annotations

import copy

import timm
import torch

from bench.common import best_of
from core.model import capture, from_module, load_model


def measure(lm, untouched, batch: int) -> tuple[float, float]:
    x = torch.randn(batch, *lm.data_config["input_size"])
    with torch.no_grad():
        plain = best_of(lambda: untouched(x))
        captured = best_of(lambda: capture.forward(lm, x))
    return plain, captured


def main() -> None:
    torch.manual_seed(0)
    demo = load_model("demo", device="cpu")
    demo_plain = copy.deepcopy(demo.model)
    for block in demo_plain.blocks:
        block.attn.fused_attn = True
    deit = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    deit_plain = copy.deepcopy(deit)
    deit_lm = from_module(deit, "deit_tiny_patch16_224", device="cpu")
    ratios = {}
    for name, lm, plain_model, batch in (("demo", demo, demo_plain, 256),
                                         ("deit_tiny", deit_lm, deit_plain, 16)):
        plain, captured = measure(lm, plain_model, batch)
        ratios[name] = captured / plain
        print(f"{name}: batch {batch}: timm forward {plain * 1e3:.1f} ms, capture forward "
              f"{captured * 1e3:.1f} ms ({batch / captured:.0f} images/s)")
    for name, ratio in ratios.items():
        print(f"capture_overhead_{name}: {ratio:.2f}")


if __name__ == "__main__":
    main()
