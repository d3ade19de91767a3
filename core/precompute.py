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
from core.pattern_overview import build as build_patterns
from core.pattern_vectors import PATTERNS
from core.strength import STRENGTH

ANALYSES: list[Analysis] = [FORWARD, STRENGTH, PATTERNS, FAITHFULNESS]


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
    results: dict[str, RunResult] = {}
    for analysis in ANALYSES:
        results[analysis.name] = result = with_bar(analysis.name, len(ds), lambda p: run(
            lm, ds, list(range(len(ds))), analysis, cache=cache, progress=p))
        skipped.update(result.skipped)
        done &= set(result.arrays)
    for step in DATASET_STEPS:
        print(step(lm, ds, results, cache))
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    print(f"precompute: {len(done)} images done, {len(skipped)} skipped, "
          f"{time.perf_counter() - start:.1f} s ({lm.name} on {lm.device}, "
          f"cache {cache.directory if cache.enabled else 'off'})")
    return 0


def with_bar(name: str, total: int, work: Callable[[Progress], RunResult]) -> RunResult:
    """Run `work` with a progress bar on stderr."""
    with tqdm(total=total, desc=name, unit="img", file=sys.stderr) as bar:
        return work(lambda n, _total: bar.update(n - bar.n))


def head_importance(lm: LoadedModel, ds: Dataset, results: dict[str, RunResult],
                    cache: ArrayCache) -> str:
    """Dataset step of SPEC "Head pruning": every image's importance, each on its own
    label (so not a uniform per-image analysis), and the overview layout."""
    if not cache.enabled:
        return "importance: not computed (kept only in the cache, which is off)"
    result = with_bar("importance", len(ds),
                      lambda p: importance_layout.precompute(lm, ds, cache, p))
    return (f"importance: {len(result.arrays)} images x {lm.num_layers * lm.num_heads} heads, "
            f"overview layout of '{importance_layout.DEFAULT_METRIC}'")


def pattern_layouts(lm: LoadedModel, ds: Dataset, results: dict[str, RunResult],
                    cache: ArrayCache) -> str:
    """Dataset step of SPEC "Attention patterns": autoencoder and the two layouts."""
    if not cache.enabled:
        return "patterns: layouts not computed (they are kept only in the cache, which is off)"
    start = time.perf_counter()
    try:
        overview = build_patterns(lm, ds, cache, stage=lambda text, fraction: print(
            f"patterns: {text}", file=sys.stderr))
    except ValueError as err:
        return f"patterns: not computed ({err})"
    return (f"patterns: {len(overview.image)} heads laid out, autoencoder loss per epoch "
            f"{', '.join(f'{v:.4f}' for v in overview.ae_loss)}, "
            f"{time.perf_counter() - start:.1f} s")


def faithfulness_table(lm: LoadedModel, ds: Dataset, results: dict[str, RunResult],
                       cache: ArrayCache) -> str:
    """Dataset step of SPEC "Faithfulness of explanations": the averaged table."""
    done = results.get(FAITHFULNESS.name)
    per_image = list(done.arrays.values()) if done else []
    return faithfulness_report(ds, per_image) if per_image else "faithfulness: no image scored"


# Dataset-level steps, after the per-image analyses; each returns the text it reports.
DatasetStep = Callable[[LoadedModel, Dataset, dict[str, RunResult], ArrayCache], str]
DATASET_STEPS: list[DatasetStep] = [head_importance, pattern_layouts, faithfulness_table]


if __name__ == "__main__":
    sys.exit(main())
