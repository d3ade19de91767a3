"""Cost of exact leave-one-out head importance (SPEC "Head pruning").

For the demo model and a random-init deit_tiny_patch16_224 (224 x 224), on the same
batch in the same run:
- naive: one head at a time, a full instrumented forward of the batch per head
  (L x H + 1 forwards, timm's stock kernels), same metrics
  (``testing.reference.naive_leave_one_out``): the headline baseline;
- unbatched naive: the same loop one image at a time (batch size 1, like the floor);
- engine: ``core.analyses.importance.leave_one_out``, on the kernels measured for the
  model on this machine (``core.model._kernels``; the choice is printed);
- engine on stock kernels and engine on oneDNN everywhere: the same with each choice
  forced, to show what the algorithm alone gains over the naive loop and what each
  kernel adds;
- floor: one full forward of the untouched timm model (fused attention) at batch size 1,
  times the forward-equivalents an exact method that reuses the activations before the
  pruned layer must run per image, ``1 + H * sum_l (L - l) / L``, times the images.
Then one head's six partial-pruning modes on one demo image, and the whole demo set
(1,000 images, from decoding to metrics, no cache). Then the model families
(``core.model._families``), random-init at 224 x 224, the same comparison on 2 images:
a BEiT of deit_tiny's widths (12 x 3 heads, relative position bias per block) and
eva02_tiny_patch14_224 (12 x 3 heads, rope, SwiGLU), with deit_tiny as control; for
each, which fast path applies and which falls back (``--families`` runs this part
alone). The last lines are the headline figures. ``--threads N`` sets torch's thread
count (default: torch's own).
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from typing import Callable

import timm
import torch
from timm.layers import Mlp

from bench.common import best_of, interleaved
from core.analyses import ANALYSES, importance, partial_pruning
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.engine import run
from core.model import LoadedModel, from_module, load_model
from core.model._families import output_from_heads
from core.model._final_rows import rows_read_by_head
from core.model._kernels import kernel_choice
from core.model.kernel_choice import KernelChoice
from testing.reference import naive_leave_one_out


def forward_equivalents(lm: LoadedModel) -> float:
    """Full forwards per image of an exact leave-one-out that reuses the prefix."""
    layers = lm.num_layers
    return 1 + lm.num_heads * sum((layers - layer) / layers for layer in range(layers))


def naive_per_image(lm: LoadedModel, x: torch.Tensor, targets: list[int | None]) -> None:
    """The naive loop, one image at a time (batch size 1)."""
    for i in range(len(x)):
        naive_leave_one_out(lm, x[i:i + 1], targets[i:i + 1])


def on_kernels(lm: LoadedModel, onednn_from: int | None, x: torch.Tensor,
               targets: list[int | None]) -> None:
    """The engine with the kernel choice forced (None: stock kernels; 0: oneDNN at every
    size), then the measured choice back."""
    measured = kernel_choice(lm)
    lm.kernels = KernelChoice(onednn_from, {})
    try:
        importance.leave_one_out(lm, x, targets)
    finally:
        lm.kernels = measured


def measure(name: str, lm: LoadedModel, plain: torch.nn.Module, images: int, rounds: int,
            clock: Callable[[], float]) -> dict[str, float]:
    """Speedups over the naive loop and the floor ratio, from the best of `rounds`
    interleaved rounds: ``speedup`` (naive / engine), ``unbatched`` (unbatched naive /
    engine), ``stock`` and ``onednn`` (naive / engine on those kernels), ``floor``
    (engine / floor)."""
    torch.manual_seed(0)
    x = torch.randn(images, *lm.data_config["input_size"])
    targets = [None] * images
    importance.leave_one_out(lm, x, targets)  # warm-up (and the kernels measured)
    print(f"{name}: kernels chosen by measurement: {kernel_choice(lm).describe()}")
    runs = {
        "forward": lambda: plain(x[:1]),
        "engine": lambda: importance.leave_one_out(lm, x, targets),
        "engine on stock kernels": lambda: on_kernels(lm, None, x, targets),
        "engine on oneDNN everywhere": lambda: on_kernels(lm, 0, x, targets),
        "naive": lambda: naive_leave_one_out(lm, x, targets),
        "unbatched naive": lambda: naive_per_image(lm, x, targets),
    }
    best = interleaved(runs, rounds, clock, repeats={"forward": 5})
    floor = best["forward"] * images * forward_equivalents(lm)
    figures = {"speedup": best["naive"] / best["engine"],
               "unbatched": best["unbatched naive"] / best["engine"],
               "stock": best["naive"] / best["engine on stock kernels"],
               "onednn": best["naive"] / best["engine on oneDNN everywhere"],
               "floor": best["engine"] / floor}
    times = ", ".join(f"{key} {value:.3f} s" for key, value in best.items() if key != "forward")
    print(f"{name}: {images} images, {lm.num_layers} x {lm.num_heads} heads: {times}, floor "
          f"{floor:.3f} s ({forward_equivalents(lm):.1f} forward-equivalents x "
          f"{best['forward'] * 1e3:.2f} ms per batch-1 forward); speedup vs naive "
          f"{figures['speedup']:.2f} (vs unbatched naive {figures['unbatched']:.2f}; on stock "
          f"kernels {figures['stock']:.2f}; on oneDNN everywhere {figures['onednn']:.2f}), "
          f"engine / floor {figures['floor']:.2f}")
    return figures


FAMILIES = {  # name -> (timm name, keyword overrides): 224 x 224, 12 layers x 3 heads
    "deit_tiny": ("deit_tiny_patch16_224", {}),
    "beit_tiny": ("beit_base_patch16_224", {"embed_dim": 192, "num_heads": 3}),
    "eva02_tiny": ("eva02_tiny_patch14_224", {}),
}


def fast_paths(lm: LoadedModel) -> dict[str, bool]:
    """Which of leave-one-out's fast paths apply to the model (False: it falls back)."""
    heads = torch.zeros(1, lm.num_tokens, lm.attention_modules[0].proj.in_features)
    with torch.no_grad():
        derived = all(output_from_heads(a, heads) is not None for a in lm.attention_modules)
    return {"z from kept head outputs": derived,
            "fused attention after the pruned layer": all(
                hasattr(a, "fused_attn") for a in lm.attention_modules),
            "final block's read rows only": rows_read_by_head(lm.model) is not None,
            "oneDNN GELU fused into the MLP": all(
                type(b.mlp) is Mlp and isinstance(b.mlp.act, torch.nn.GELU)
                for b in lm.model.blocks)}


def families(rounds: int, clock: Callable[[], float]) -> dict[str, dict[str, float]]:
    """Leave-one-out against the naive loop for each of FAMILIES (2 images), and which
    fast paths apply, printed; the figures of :func:`measure` per family."""
    figures = {}
    for name, (timm_name, kwargs) in FAMILIES.items():
        torch.manual_seed(0)
        model = timm.create_model(timm_name, pretrained=False, num_classes=10, **kwargs).eval()
        plain = copy.deepcopy(model)  # timm's default: fused attention
        lm = from_module(model, timm_name, device="cpu")
        paths = ", ".join(f"{path}: {'applies' if on else 'falls back'}"
                          for path, on in fast_paths(lm).items())
        print(f"{name}: fast paths: {paths}")
        figures[name] = measure(name, lm, plain, images=2, rounds=rounds, clock=clock)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with this process's CPU time instead of wall time (with "
                             "--threads 1 it does not count time lost to other processes)")
    parser.add_argument("--families", action="store_true",
                        help="only the model families' comparison")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(f"timing: {'CPU' if args.cpu_time else 'wall'} time, {torch.get_num_threads()} "
          f"torch threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.families:
        family_lines(families(rounds=3, clock=clock))
        return
    demo = load_model("demo", device="cpu")
    demo_plain = copy.deepcopy(demo.model)
    for block in demo_plain.blocks:  # the demo as timm builds it: fused attention
        block.attn.fused_attn = True
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    deit_plain = copy.deepcopy(deit)  # timm's default: fused attention
    deit_lm = from_module(deit, "deit_tiny_patch16_224", device="cpu")
    measure("demo", demo, demo_plain, images=64, rounds=3, clock=clock)
    deit_figures = measure("deit_tiny", deit_lm, deit_plain, images=4, rounds=3, clock=clock)
    ds = demo_dataset()
    x, _, _ = load_batch(demo, ds, [0])
    partial = best_of(lambda: partial_pruning.modes_of_head(demo, x, 3, 1, [ds.records[0].label]),
                      clock=clock)
    print(f"partial pruning, demo, one image, one head, six modes: {partial * 1e3:.1f} ms")
    start = clock()
    result = run(demo, ds, list(range(len(ds))), ANALYSES["importance"])
    seconds = clock() - start
    print(f"demo set: {len(result.arrays)} images in {seconds:.1f} s")
    print(f"speedup_on_stock_kernels_deit_tiny: {deit_figures['stock']:.2f}")
    print(f"speedup_on_onednn_everywhere_deit_tiny: {deit_figures['onednn']:.2f}")
    print(f"speedup_vs_unbatched_naive_deit_tiny: {deit_figures['unbatched']:.2f}")
    print(f"speedup_vs_naive_deit_tiny: {deit_figures['speedup']:.2f}")
    print(f"floor_ratio_deit_tiny: {deit_figures['floor']:.2f}")
    print(f"demo_dataset_seconds: {seconds:.1f}")
    family_lines(families(rounds=3, clock=clock))


def family_lines(figures: dict[str, dict[str, float]]) -> None:
    """The families' headline figures, ``name: value``."""
    for name, values in figures.items():
        print(f"speedup_vs_naive_{name}: {values['speedup']:.2f}")
        print(f"speedup_on_stock_kernels_{name}: {values['stock']:.2f}")


if __name__ == "__main__":
    main()
