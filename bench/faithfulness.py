"""Faithfulness of explanations, before and after stacking the methods' forwards
(SPEC "Faithfulness of explanations").

On 64 demo images: the maps of every method (``core.explain``), then the curves
two ways, in alternating rounds: one forward series per method and curve
(``testing.reference.per_method_faithfulness``, how it was computed before) and
every step of every method in shared forwards with each distinct input once
(``core.analyses.faithfulness.evaluate``). Prints the forwards each way runs and
images per second of the curves and of the whole analysis (maps included); the
headline is the speedup of the whole analysis.
"""
from __future__ import annotations

import os
import time

import torch

from bench.common import interleaved
from core.analyses.faithfulness import METHOD_NAMES, distinct_inputs, evaluate, step_states
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.explain import explain
from core.model import load_model, logits
from core.model.targets import Explained
from testing.reference import per_method_faithfulness

IMAGES = 64


def main() -> None:
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    lm = load_model("demo", device="cpu")
    x, _, _ = load_batch(lm, demo_dataset(), list(range(IMAGES)))
    classes = logits(lm, x).argmax(-1)
    start = time.perf_counter()
    maps = torch.stack([explain(lm, x, m, classes.tolist()) for m in METHOD_NAMES], 1)
    maps_s = time.perf_counter() - start
    states, _ = step_states(maps)
    distinct = len(distinct_inputs(states.flatten(1, 2))[0])
    print(f"{IMAGES} images x {len(METHOD_NAMES)} methods: {states.shape[2]} inputs per "
          f"image and method; forwards per image: {states.shape[1] * states.shape[2]} "
          f"before, {distinct / IMAGES:.1f} after (distinct inputs)")
    best = interleaved({"before": lambda: per_method_faithfulness(lm, x, maps, classes),
                        "after": lambda: evaluate(lm, x, maps, Explained(classes=classes))}, rounds=3)
    print(f"maps of every method: {maps_s:.2f} s ({IMAGES / maps_s:.1f} images/s)")
    for name, seconds in best.items():
        print(f"{name}: curves {IMAGES / seconds:.1f} images/s, whole analysis "
              f"{IMAGES / (seconds + maps_s):.1f} images/s")
    print(f"curves_speedup: {best['before'] / best['after']:.2f}")
    print(f"faithfulness_speedup: {(best['before'] + maps_s) / (best['after'] + maps_s):.2f}")


if __name__ == "__main__":
    main()
