"""The first run a new user waits for: the whole demo precomputed into an empty cache.

Loads the demo model and the demo image set, then runs ``core.precompute.precompute``
(every precomputed analysis, then every dataset step) into a fresh temporary cache,
on this machine's CPU (or ``--device``). Prints each step's time (and images per
second for the per-image analyses) in the order they ran. Then each page's whole-set
view as a user meets it without any precompute: every dataset step alone, from its own
empty cache (what "Compute now" waits for). The headlines: ``demo_precompute_seconds``
(model and image loading included) and ``longest_whole_set_view_seconds``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from core.analyses import ANALYSES
from core.data.builtin import demo_dataset
from core.dataset import DATASET_STEPS
from core.engine import run_step
from core.model import load_model
from core.precompute import precompute
from core.storage.cache import ArrayCache


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    start, cpu = time.perf_counter(), time.process_time()
    lm = load_model("demo", device=args.device)
    ds = demo_dataset()
    loading = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        summary = precompute(lm, ds, ArrayCache(folder))
    total = time.perf_counter() - start
    print(f"\n{len(ds)} images, {lm.name} on {lm.device}; CPU time "
          f"{time.process_time() - cpu:.1f} s")
    print(f"{'loading':24s} {loading:6.1f} s")
    for name, seconds in summary.seconds.items():  # in the order they ran
        rate = f"  {len(ds) / seconds:6.1f} images/s" if name in ANALYSES else ""
        print(f"{name:24s} {seconds:6.1f} s{rate}")
    views = {}
    for name, step in DATASET_STEPS.items():
        if step.unavailable and step.unavailable(lm, ds):  # (the prompt's rates: no shortcut)
            continue
        with tempfile.TemporaryDirectory() as folder:
            begin = time.perf_counter()
            run_step(lm, ds, step, cache=ArrayCache(folder))
            views[name] = time.perf_counter() - begin
        print(f"whole-set view {name:24s} {views[name]:6.1f} s from an empty cache")
    print(f"demo_precompute_seconds: {total:.1f}")
    print(f"longest_whole_set_view_seconds: {max(views.values()):.1f}")


if __name__ == "__main__":
    main()
