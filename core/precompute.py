"""Batch precompute: fill the cache with every analysis for a whole image set.

    python -m core.precompute --model demo --images demo
    python -m core.precompute --model vit_base_patch16_224 --checkpoint vit.safetensors \
        --images ./my_images

Ends with a one-line summary: images done, skipped (with reasons above it), time.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from tqdm import tqdm

from core import importance_layout
from core.cache import ArrayCache
from core.datasets import Dataset, load_dataset
from core.engine import Analysis, Progress, RunResult, run
from core.faithfulness import FAITHFULNESS, faithfulness_report
from core.forward_summary import FORWARD
from core.models import LoadedModel, ModelLoadError, load_model
from core.strength import STRENGTH

ANALYSES: list[Analysis] = [FORWARD, STRENGTH, FAITHFULNESS]
# Dataset-level steps, after the per-image analyses: (name, step(lm, ds, cache, progress)).
DATASET_STEPS: list[tuple[str, Callable[[LoadedModel, Dataset, ArrayCache, Progress | None],
                                        RunResult]]] = [
    ("importance", importance_layout.precompute),
]


def with_bar(name: str, total: int, work: Callable[[Progress], RunResult]) -> RunResult:
    """Run `work` with a progress bar on stderr."""
    with tqdm(total=total, desc=name, unit="img", file=sys.stderr) as bar:
        return work(lambda n, _total: bar.update(n - bar.n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill the ViT Attention Explorer cache.")
    parser.add_argument("--model", default="demo", help="'demo' or a timm model name")
    parser.add_argument("--checkpoint", default=None, help="local .safetensors/.pth/.bin")
    parser.add_argument("--images", default="demo", help="'demo' or an image folder")
    parser.add_argument("--cache", default=None, help="cache folder (default: cache/ or "
                        "$VIT_EXPLORER_CACHE)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: auto)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        lm = load_model(args.model, args.checkpoint, args.device)
        ds = load_dataset(args.images, lm.class_names)
    except (ModelLoadError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cache = ArrayCache(args.cache)
    if cache.warning:
        print(f"warning: {cache.warning}", file=sys.stderr)
    skipped = dict(ds.skipped)
    done: set[int] = set(range(len(ds)))
    steps = [(a.name, lambda p, a=a: run(lm, ds, list(range(len(ds))), a, cache=cache,
                                          progress=p)) for a in ANALYSES]
    if cache.enabled:
        steps += [(name, lambda p, step=step: step(lm, ds, cache, p))
                  for name, step in DATASET_STEPS]
    else:
        print(f"note: {', '.join(name for name, _ in DATASET_STEPS)} skipped: these steps "
              "only fill the cache", file=sys.stderr)
    for name, work in steps:
        result = with_bar(name, len(ds), work)
        skipped.update(result.skipped)
        done &= set(result.arrays)
    if FAITHFULNESS in ANALYSES and done:
        print(faithfulness_report(lm, ds, sorted(done), cache))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    print(f"precompute: {len(done)} images done, {len(skipped)} skipped, "
          f"{time.perf_counter() - start:.1f} s ({lm.name} on {lm.device}, "
          f"cache {cache.directory if cache.enabled else 'off'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
