"""Cost of exact leave-one-out head importance (SPEC "Head pruning").

For the demo model and a random-init deit_tiny_patch16_224 (224 x 224), on the same
batch in the same run:
- naive: one head at a time, a full instrumented forward of the batch per head
  (L x H + 1 forwards), same metrics (``core.importance.naive_leave_one_out``);
- engine: ``core.importance.leave_one_out``;
- floor: one full forward of the untouched timm model (fused attention) at batch size 1,
  times the forward-equivalents an exact method that reuses the activations before the
  pruned layer must run per image, ``1 + H * sum_l (L - l) / L``, times the images.
Then the whole demo set (1,000 images, from decoding to metrics, no cache).
The last lines are the headline figures.
"""
from __future__ import annotations

import copy
import time

import timm
import torch

from bench.common import best_of
from core import importance
from core.datasets import demo_dataset
from core.models import LoadedModel, from_module, load_model


def forward_equivalents(lm: LoadedModel) -> float:
    """Full forwards per image of an exact leave-one-out that reuses the prefix."""
    layers = lm.num_layers
    return 1 + lm.num_heads * sum((layers - layer) / layers for layer in range(layers))


def measure(name: str, lm: LoadedModel, plain: torch.nn.Module, images: int,
            rounds: int) -> tuple[float, float]:
    """(naive / engine, engine / floor), best of `rounds` interleaved rounds."""
    torch.manual_seed(0)
    x = torch.randn(images, *lm.data_config["input_size"])
    targets = [None] * images
    importance.leave_one_out(lm, x, targets)  # warm-up
    best = {"forward": float("inf"), "engine": float("inf"), "naive": float("inf")}
    for _ in range(rounds):
        with torch.no_grad():
            best["forward"] = min(best["forward"], best_of(lambda: plain(x[:1]), repeats=5))
        best["engine"] = min(best["engine"], best_of(
            lambda: importance.leave_one_out(lm, x, targets), repeats=1, warmup=0))
        best["naive"] = min(best["naive"], best_of(
            lambda: importance.naive_leave_one_out(lm, x, targets), repeats=1, warmup=0))
    floor = best["forward"] * images * forward_equivalents(lm)
    print(f"{name}: {images} images, {lm.num_layers} x {lm.num_heads} heads: naive "
          f"{best['naive']:.3f} s, engine {best['engine']:.3f} s, floor {floor:.3f} s "
          f"({forward_equivalents(lm):.1f} forward-equivalents x {best['forward'] * 1e3:.2f} ms "
          f"per batch-1 forward); speedup vs naive {best['naive'] / best['engine']:.2f}, "
          f"engine / floor {best['engine'] / floor:.2f}")
    return best["naive"] / best["engine"], best["engine"] / floor


def main() -> None:
    demo = load_model("demo", device="cpu")
    demo_plain = copy.deepcopy(demo.model)
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    deit_plain = copy.deepcopy(deit)  # timm's default: fused attention
    deit_lm = from_module(deit, "deit_tiny_patch16_224", device="cpu")
    for block in demo_plain.blocks:
        block.attn.fused_attn = True
    measure("demo", demo, demo_plain, images=64, rounds=3)
    speedup, floor_ratio = measure("deit_tiny", deit_lm, deit_plain, images=4, rounds=2)
    ds = demo_dataset()
    start = time.perf_counter()
    result = importance.for_images(demo, ds, list(range(len(ds))))
    seconds = time.perf_counter() - start
    print(f"demo set: {len(result.arrays)} images in {seconds:.1f} s "
          f"({torch.get_num_threads()} threads)")
    print(f"speedup_vs_naive_deit_tiny: {speedup:.2f}")
    print(f"floor_ratio_deit_tiny: {floor_ratio:.2f}")
    print(f"demo_dataset_seconds: {seconds:.1f}")


if __name__ == "__main__":
    main()
