"""Sanity checks and ROAD (SPEC "Sanity checks of explanations", "ROAD"), each against
its naive loop, on a sample of demo images (or a random-init timm model: ``--model
random:deit_tiny_patch16_224``).

- Sanity: the step's cascade (one copy re-initialised step by step, every method's maps
  of the sample in batches) against a naive loop that, for each depth, copies the
  untouched model again, re-initialises every part down to that depth and explains
  one image at a time. Both give the same similarities (printed).
- ROAD: the faithfulness analysis's ROAD curves of every method (``road``: imputations
  then batched forwards) against one imputation and one forward per step, method,
  order and image.

Prints seconds per image each way and their ratio; the last lines are, per method of
``METHODS``, its mean Spearman to the untouched map once every layer is re-initialised
and its ROAD AUC with the most relevant patches removed first.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import threading
import time

import numpy as np
import timm
import torch

from core.analyses.faithfulness import METHOD_NAMES, evaluate, perturbation_counts, road
from core.analyses.road import impute
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.dataset.faithfulness_table import stratified_sample
from core.dataset.sanity import (SEED, maps_of, randomised, reinitialise, similarities)
from core.model import LoadedModel, from_module, load_model, logits
from core.model.targets import Explained


def model_for(spec: str) -> LoadedModel:
    if spec.startswith("random:"):
        torch.manual_seed(0)
        name = spec.split(":", 1)[1]
        return from_module(timm.create_model(name, pretrained=False).eval(), name,
                           device="cpu")
    return load_model(spec, device="cpu")


def naive_sanity(lm: LoadedModel, x: torch.Tensor, targets: list[int], original: np.ndarray
                 ) -> list[np.ndarray]:
    """Spearman (method,) after each depth: a fresh copy per depth, one image at a time."""
    rhos = []
    blocks = len(lm.model.blocks)
    for depth in range(1, blocks + 2):
        twin = dataclasses.replace(lm, model=copy.deepcopy(lm.model), lock=threading.RLock())
        parts = [twin.model.get_classifier()] + list(reversed(list(twin.model.blocks)))
        for step, module in enumerate(parts[:depth], start=1):
            reinitialise(module, torch.Generator().manual_seed(SEED + step))
        maps = np.concatenate([maps_of(twin, x[b:b + 1], targets[b:b + 1])
                               for b in range(len(x))])
        rhos.append(similarities(original, maps, lm.grid)[0])
    return rhos


def naive_road(lm: LoadedModel, x: torch.Tensor, maps: torch.Tensor, classes: list[int]
               ) -> dict[str, np.ndarray]:
    """ROAD AUCs (image, method), most and least relevant first: one imputed input and
    one forward at a time."""
    (gh, gw), (ph, pw) = lm.grid, lm.patch_size
    out = {"road_most": np.zeros(maps.shape[:2]), "road_least": np.zeros(maps.shape[:2])}
    for b in range(len(x)):
        for m in range(maps.shape[1]):
            for key, sign in (("road_most", -1), ("road_least", 1)):
                order = sorted(range(gh * gw), key=lambda j: (sign * float(maps[b, m, j]), j))
                curve = []
                for k in perturbation_counts(gh * gw):
                    removed = np.zeros(x.shape[2:], bool)
                    for patch in order[:k]:
                        r, c = divmod(patch, gw)
                        removed[r * ph:(r + 1) * ph, c * pw:(c + 1) * pw] = True
                    image = torch.from_numpy(impute(x[b].numpy(), removed))[None]
                    curve.append(float(logits(lm, image).softmax(-1)[0, classes[b]]))
                out[key][b, m] = np.trapezoid(curve, np.arange(10) / 10)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--naive-images", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    lm, ds = model_for(args.model), demo_dataset()
    indices = stratified_sample([r.label for r in ds.records], args.images)
    x, kept, _ = load_batch(lm, ds, indices)
    with torch.no_grad():
        classes = logits(lm, x).argmax(-1).tolist()
    original = maps_of(lm, x, classes)

    begin = time.perf_counter()
    both = [similarities(original, maps_of(twin, x, classes), lm.grid)
            for _, twin in randomised(lm)]
    cascade, ssim_last = [rho for rho, _ in both], both[-1][1]
    engine_s = (time.perf_counter() - begin) / len(x)
    n = max(1, args.naive_images)
    begin = time.perf_counter()
    naive = naive_sanity(lm, x[:n], classes[:n], original[:n])
    naive_s = (time.perf_counter() - begin) / n
    again = [similarities(original[:n], maps_of(twin, x[:n], classes[:n]), lm.grid)[0]
             for _, twin in randomised(lm)]
    print(f"sanity: {engine_s:.3f} s per image (cascade), {naive_s:.3f} s per image (naive "
          f"loop); same similarities: max difference {np.nanmax(np.abs(np.stack(naive) - np.stack(again))):.2g}")

    maps = torch.from_numpy(original)
    begin = time.perf_counter()
    with torch.no_grad():
        scored = road(lm, x, maps, Explained(classes=torch.tensor(classes)))
    road_s = (time.perf_counter() - begin) / len(x)
    begin = time.perf_counter()
    with torch.no_grad():
        loop = naive_road(lm, x[:n], maps[:n], classes[:n])
    loop_s = (time.perf_counter() - begin) / n
    print(f"road: {road_s:.3f} s per image (batched), {loop_s:.3f} s per image (naive loop); "
          "same AUCs: max difference "
          f"{max(np.abs(loop[k] - scored[k][:n]).max() for k in loop):.2g}")
    with torch.no_grad():
        fill = evaluate(lm, x, maps, Explained(classes=torch.tensor(classes)))
    print(f"model: {args.model}, {len(x)} images ({len(kept)} read); per method, means:")
    print(f"  {'method':<17} {'Spearman':>8} {'SSIM':>6} {'ROAD most':>9} {'ROAD least':>10} "
          f"{'deletion':>8} {'insertion':>9}   (Spearman, SSIM: after full randomisation)")
    for m, name in enumerate(METHOD_NAMES):
        print(f"  {name:<17} {cascade[-1][m]:8.3f} {ssim_last[m]:6.3f} "
              f"{scored['road_most'][:, m].mean():9.3f} {scored['road_least'][:, m].mean():10.3f} "
              f"{fill['deletion'][:, m].mean():8.3f} {fill['insertion'][:, m].mean():9.3f}")
    print(f"sanity_speedup_over_naive_loop: {naive_s / engine_s:.2f}")
    print(f"road_speedup_over_naive_loop: {loop_s / road_s:.2f}")
    for m, name in enumerate(METHOD_NAMES):
        print(f"sanity_{name}_spearman_after_full_randomisation: {cascade[-1][m]:.3f}")
    for m, name in enumerate(METHOD_NAMES):
        print(f"road_auc_most_relevant_first_{name}: {scored['road_most'][:, m].mean():.3f}")


if __name__ == "__main__":
    main()
