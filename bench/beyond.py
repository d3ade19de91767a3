"""Cost of the analyses beyond the paper against their naive loops, and the fast
importance estimate against exact leave-one-out.

For the demo model and a random-init deit_tiny_patch16_224 (224 x 224), same inputs,
same run, best of ``--rounds`` interleaved rounds:
- head interactions of the top 8 heads (28 pairs): the engine's batched pair pruning
  (``core.analyses.interactions.pair_effects``) against one full masked forward per
  head and per pair (``testing.reference.naive_pairs``);
- patch ablation: ``explain(..., "ablation")`` against one forward of the untouched
  timm model per removed patch (``testing.reference.naive_patch_ablation``);
- the estimate (Michel et al. 2019, one forward and one backward) against exact
  leave-one-out (``core.analyses.importance.leave_one_out``), and its Spearman rank
  correlation with the exact probability drop, per image, averaged: on demo test
  images (their labels) and on deit_tiny with noise inputs (its predictions);
- class views on the demo set: the step's build from the per-image results against a
  loop over classes and images (both take milliseconds: the cost is in the per-image
  analyses they read).
The last lines are the headline figures.
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import timm
import torch

from bench.common import best_of, interleaved
from core.analyses import FORWARD, IMPORTANCE, PATTERNS, STRENGTH
from core.analyses.importance import leave_one_out
from core.analyses.importance_estimate import signed_estimate
from core.analyses.pattern_labels import decide
from core.analyses.interactions import pair_effects, top_heads
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.dataset.class_views import CLASS_VIEWS, ClassViewParams
from core.dataset.statistics import spearman
from core.engine import run
from core.explain import explain
from core.explain.ablation import patch_groups
from core.model import LoadedModel, from_module, load_model
from testing.reference import naive_pairs, naive_patch_ablation

K = 8


def untouched_copy(lm: LoadedModel) -> torch.nn.Module:
    """The model as timm runs it (fused attention), for the naive ablation loop."""
    plain = copy.deepcopy(lm.model)
    for block in plain.blocks:
        block.attn.fused_attn = True
    return plain


def measure(name: str, lm: LoadedModel, x: torch.Tensor, targets: list[int | None],
            rounds: int) -> dict[str, float]:
    """Engine and naive times of each analysis on `x`, and the estimate's agreement."""
    x = x.to(lm.device)
    plain = untouched_copy(lm)
    exact = leave_one_out(lm, x, targets)
    heads = np.stack([top_heads(values, K) for values in exact[:, 0]])
    classes = [t if t is not None else int(c) for t, c in
               zip(targets, lm.model(x).argmax(-1).tolist())]
    groups = patch_groups(lm.grid, 1)

    def naive_interactions() -> None:
        for b in range(len(x)):
            naive_pairs(lm, x[b:b + 1], targets[b:b + 1], [tuple(h) for h in heads[b].tolist()])

    def naive_ablation() -> None:
        for b in range(len(x)):
            naive_patch_ablation(plain, x[b:b + 1], classes[b], groups)

    runs = {
        "interactions": lambda: pair_effects(lm, x, targets, heads),
        "naive interactions": naive_interactions,
        "ablation": lambda: explain(lm, x, "ablation", targets),
        "naive ablation": naive_ablation,
        "estimate": lambda: signed_estimate(lm, x, targets),
        "exact leave-one-out": lambda: leave_one_out(lm, x, targets),
    }
    best = interleaved(runs, rounds)
    estimate = signed_estimate(lm, x, targets).numpy()
    rho = np.nanmean([spearman(e, v[0]) for e, v in zip(estimate, exact)])
    figures = {"interactions": best["naive interactions"] / best["interactions"],
               "ablation": best["naive ablation"] / best["ablation"],
               "estimate": best["exact leave-one-out"] / best["estimate"], "spearman": rho}
    print(f"{name}: {len(x)} images, {lm.num_layers} x {lm.num_heads} heads, grid "
          f"{lm.grid[0]} x {lm.grid[1]}, on {lm.device}: "
          + ", ".join(f"{key} {value:.3f} s" for key, value in best.items()))
    print(f"{name}: interactions {figures['interactions']:.2f}x faster than naive, ablation "
          f"{figures['ablation']:.2f}x, estimate {figures['estimate']:.1f}x faster than exact "
          f"leave-one-out, Spearman with the exact probability drop {rho:.3f}")
    return figures


def class_views_cost(demo: LoadedModel) -> tuple[float, float]:
    """Seconds of the class-views build and of a naive loop, from the same per-image
    results of the demo set."""
    ds = demo_dataset()
    everything = list(range(len(ds)))
    reads = {a.name: run(demo, ds, everything, a).arrays
             for a in (FORWARD, IMPORTANCE, STRENGTH, PATTERNS)}
    engine = best_of(lambda: CLASS_VIEWS.build(demo, ds, reads, ClassViewParams(),
                                               lambda *_: None), repeats=3)

    def naive() -> None:  # the same outputs, one class and one image at a time
        for c in sorted({r.label for r in ds.records}):
            mine = [i for i in everything if ds.records[i].label == c]
            for name, key in (("importance", "importance"), ("strength", "entropy"),
                              ("strength", "mean_distance")):
                values = [reads[name][i][key].astype(np.float64) for i in mine]
                mean = sum(values) / len(values)
                _ = np.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            for i in mine:
                _ = decide(reads["patterns"][i]["label_scores"])

    return engine, best_of(naive, repeats=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--demo-images", type=int, default=32)
    parser.add_argument("--deit-images", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"timing: wall time, {torch.get_num_threads()} torch threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, device {args.device}")
    demo = load_model("demo", device=args.device)
    ds = demo_dataset()
    x, kept, _ = load_batch(demo, ds, list(range(args.demo_images)))
    demo_figures = measure("demo", demo, x, [ds.records[i].label for i in kept], args.rounds)
    torch.manual_seed(0)
    deit = from_module(timm.create_model("deit_tiny_patch16_224", pretrained=False).eval(),
                       "deit_tiny_patch16_224", device=args.device)
    noise = torch.randn(args.deit_images, *deit.data_config["input_size"])
    deit_figures = measure("deit_tiny", deit, noise, [None] * args.deit_images, args.rounds)
    start = time.perf_counter()
    engine, naive = class_views_cost(demo)
    print(f"class views, demo set ({len(ds)} images; per-image results computed in "
          f"{time.perf_counter() - start - engine - naive:.1f} s): build {engine * 1e3:.1f} ms, "
          f"a loop over classes and images {naive * 1e3:.1f} ms")
    print(f"interactions_speedup_vs_naive_demo: {demo_figures['interactions']:.2f}")
    print(f"interactions_speedup_vs_naive_deit_tiny: {deit_figures['interactions']:.2f}")
    print(f"ablation_speedup_vs_naive_demo: {demo_figures['ablation']:.2f}")
    print(f"ablation_speedup_vs_naive_deit_tiny: {deit_figures['ablation']:.2f}")
    print(f"estimate_speedup_demo: {demo_figures['estimate']:.1f}")
    print(f"estimate_speedup_deit_tiny: {deit_figures['estimate']:.1f}")
    print(f"estimate_spearman_demo: {demo_figures['spearman']:.3f}")
    print(f"estimate_spearman_deit_tiny: {deit_figures['spearman']:.3f}")


if __name__ == "__main__":
    main()
