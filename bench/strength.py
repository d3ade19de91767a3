"""Cost of the "strength" analysis (SPEC "Attention strength").

1. End to end: all heads of the 1,000 demo images through the engine (image
   loading, attention capture, strength), no cache.
2. Strength alone on the same captured attention: the vectorised engine versus
   a straightforward per-patch Python loop (``testing.reference.loop_strength``,
   also the tests' independent reference). The ratio is measured in this run.
Last lines are the headlines.
"""
from __future__ import annotations

import time

import torch

from bench.common import best_of
from core.analyses import ANALYSES
from core.analyses.strength import strength
from core.data.builtin import demo_dataset
from core.data.inputs import load_batch
from core.engine import run
from core.model import capture, load_model
from testing.reference import loop_strength

STRENGTH = ANALYSES["strength"]


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
