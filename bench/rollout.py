"""Per-image cost of each explanation method (SPEC "Attention aggregation"),
batched against one image at a time, same images, same run: deit_tiny
(random init, 224 x 224, 14 x 14 patches) and the demo model. Last lines are
the headlines: the speedup of batching over all methods per model."""
from __future__ import annotations

import timm
import torch

from bench.common import best_of
from core.explain import METHODS, explain
from core.model import from_module, load_model


def per_image_times(lm, x: torch.Tensor, method: str, repeats: int) -> tuple[float, float]:
    """(batched, one at a time) seconds per image."""
    batched = best_of(lambda: explain(lm, x, method), repeats=repeats)
    single = best_of(lambda: [explain(lm, x[i:i + 1], method) for i in range(len(x))],
                     repeats=repeats, warmup=0)  # warmed up by the batched calls
    return batched / len(x), single / len(x)


def main() -> None:
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    models = {"deit_tiny": (from_module(deit, "deit_tiny_patch16_224"), 8, 2),
              "demo": (load_model("demo"), 128, 3)}
    speedups = {}
    for name, (lm, batch, repeats) in models.items():
        x = torch.randn(batch, *lm.data_config["input_size"])
        total_batched = total_single = 0.0
        for method in METHODS:  # every registered method, the random baseline included
            batched, single = per_image_times(lm, x, method, repeats)
            total_batched += batched
            total_single += single
            print(f"{name} {method}: {batched * 1e3:.2f} ms/image batched ({batch}), "
                  f"{single * 1e3:.2f} ms/image one at a time, ratio {single / batched:.2f}")
        speedups[name] = total_single / total_batched
        print(f"{name} on {lm.device}: all methods {total_batched * 1e3:.2f} ms/image batched, "
              f"{total_single * 1e3:.2f} ms/image one at a time")
    print(f"batched_speedup_demo: {speedups['demo']:.2f}")
    print(f"batched_speedup_deit_tiny: {speedups['deit_tiny']:.2f}")


if __name__ == "__main__":
    main()
