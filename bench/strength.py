"""Cost of the "strength" analysis (SPEC "Attention strength").

1. End to end: all heads of the 1,000 demo images through the engine (image
   loading, attention capture, strength), no cache.
2. Strength alone on the same captured attention: the vectorised engine versus
   a straightforward per-patch Python loop (:func:`loop_strength`, also the
   tests' independent reference). The ratio is measured in this run.
Last lines are the headlines.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from bench.common import best_of
from core import capture
from core.datasets import demo_dataset, load_batch
from core.engine import run
from core.models import load_model
from core.strength import STRENGTH, strength


def loop_strength(head: np.ndarray, grid: tuple[int, int],
                  patch_size: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """One head's (s, entropy, mean distance in px) from its G x G patch attention,
    patch by patch, straight from the SPEC's words."""
    gh, gw = grid
    k = max(gh, gw)
    ring_means: list[list[float]] = [[] for _ in range(k)]
    distances = []
    for i in range(gh * gw):
        r, c = divmod(i, gw)
        sums, counts = [0.0] * k, [0] * k
        weighted, mass = 0.0, 0.0
        for j in range(gh * gw):
            r2, c2 = divmod(j, gw)
            hop = max(abs(r2 - r), abs(c2 - c))
            sums[hop] += float(head[i, j])
            counts[hop] += 1
            weighted += float(head[i, j]) * math.hypot((r2 - r) * patch_size[0],
                                                      (c2 - c) * patch_size[1])
            mass += float(head[i, j])
        for hop in range(k):
            if counts[hop]:
                ring_means[hop].append(sums[hop] / counts[hop])
        if mass > 0:
            distances.append(weighted / mass)
    s = np.array([sum(v) / len(v) for v in ring_means])
    p = s / s.sum()
    entropy = -sum(x * math.log(x) for x in p if x > 0) / math.log(k) if k > 1 else 0.0
    return s, entropy, sum(distances) / len(distances)


def main() -> None:
    torch.set_num_threads(2)
    lm = load_model("demo", device="cpu")
    ds = demo_dataset()
    indices = list(range(len(ds)))
    end_to_end = best_of(lambda: run(lm, ds, indices, STRENGTH), repeats=3)
    cpu = time.process_time()
    run(lm, ds, indices, STRENGTH)
    cpu = time.process_time() - cpu
    print(f"end to end (load + capture + strength), {len(ds)} images x {lm.num_layers} "
          f"layers x {lm.num_heads} heads: best wall {end_to_end:.2f} s, CPU time of one run "
          f"{cpu:.2f} s (both threads; less sensitive to other load)")

    batch, _, _ = load_batch(lm, ds, indices)
    p = lm.num_prefix_tokens
    patches = torch.cat([capture.forward(lm, batch[i:i + 250]).attention[..., p:, p:]
                         for i in range(0, len(batch), 250)])
    vectorised = best_of(lambda: strength(patches, lm.grid, lm.patch_size), repeats=3)
    heads = patches.reshape(-1, *patches.shape[-2:]).numpy()
    start = time.perf_counter()
    for head in heads:
        loop_strength(head, lm.grid, lm.patch_size)
    loop = time.perf_counter() - start
    print(f"strength only, {len(heads)} heads: vectorised {vectorised * 1e3:.1f} ms, "
          f"per-patch loop {loop:.1f} s")
    print(f"demo_dataset_seconds: {end_to_end:.2f}")
    print(f"speedup_vs_loop: {loop / vectorised:.0f}")


if __name__ == "__main__":
    main()
