"""Batch precompute: fill the cache with every registered analysis and dataset step
for a whole image set.

    python -m core.precompute --model demo --images demo
    python -m core.precompute --model vit_base_patch16_224 \
        --checkpoint vit.safetensors --images ./my_images [--engine ray [--address ADDR]]

Runs every analysis of ``core.ANALYSES`` marked for the precompute (default
parameters and targets), then every step of ``core.DATASET_STEPS`` on those results.
With ``--engine ray`` the per-image analyses run on a Ray cluster
(``core.ray_executor``: the cluster at ``--address`` or ``$RAY_ADDRESS``, else a
local one with ``--workers`` CPUs); the dataset steps run here afterwards, and every
result goes into this machine's cache. Ends with a one-line summary: images done,
skipped (with reasons above it), time. Exits 1 when results could not be stored
in the cache (a folder that cannot be opened, a full disk, from the start or midway),
2 when the model or image set is refused. File names and reasons are printed with
control characters escaped.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from tqdm import tqdm

from core.analyses import ANALYSES
from core.data.datasets import load_dataset
from core.data.records import Dataset
from core.dataset import DATASET_STEPS, DatasetStep
from core.engine import (Executor, Progress, Request, RunResult, batch_groups, run_many,
                         run_step)
from core.model import LoadedModel, ModelLoadError, load_model
from core.storage.cache import ArrayCache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill the ViT Attention Explorer cache.")
    parser.add_argument("--model", default="demo", help="'demo', a timm model name, a Hugging "
                        "Face folder or transformers:ORG/NAME")
    parser.add_argument("--checkpoint", default=None, help="local .safetensors/.pth/.bin")
    parser.add_argument("--images", default="demo", help="'demo' or an image folder")
    parser.add_argument("--cache", default=None, help="cache folder (default: cache/ or "
                        "$VIT_EXPLORER_CACHE)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: auto)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="where the per-image analyses run (default: here)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: "
                        "$RAY_ADDRESS, else a local cluster)")
    parser.add_argument("--workers", type=int, default=None, help="CPUs of a local Ray "
                        "cluster (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        lm = load_model(args.model, args.checkpoint, args.device)
        ds = load_dataset(args.images, lm.class_names)
        executor = None
        if args.engine == "ray":
            from core import ray_executor
            ray_executor.start(args.address, args.workers)
            executor = ray_executor.RayExecutor(lm)
    except (ModelLoadError, ValueError, RuntimeError) as err:
        print(f"error: {printable(err)}", file=sys.stderr)
        return 2
    cache = ArrayCache(args.cache)
    if not cache.enabled:
        print(f"error: nothing can be stored: {cache.warning}", file=sys.stderr)
        return 1
    summary = precompute(lm, ds, cache, executor)
    done, skipped = summary.done, summary.skipped
    for name, reason in skipped.items():
        print(f"skipped {printable(name)}: {printable(reason)}")
    for note in ds.notes:
        print(f"note: {printable(note)}")
    print(f"precompute: {len(done)} images done, {len(skipped)} skipped, "
          f"{time.perf_counter() - start:.1f} s ({lm.name} on {lm.device}, "
          f"cache {cache.directory if cache.enabled else 'off'})")
    if cache.failed_writes:
        print(f"error: {cache.failed_writes} results could not be stored in the cache: "
              f"{cache.warning} Free space or set --cache to a writable folder, then run "
              "again (what is stored is kept).", file=sys.stderr)
        return 1
    return 0


def printable(text: object) -> str:
    """`text` on one line without terminal controls: line breaks, escape sequences and
    other control characters written as escapes (``\\n``, ``\\x1b``), so that a file
    name cannot forge the summary line or drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                   for c in str(text))


@dataclass
class Summary:
    """What a precompute did: the images every analysis could use, the skipped files
    with reasons, and each analysis's and dataset step's wall time in seconds."""

    done: set[int]
    skipped: dict[str, object]  # image id -> why (a Failure, or the listing's text)
    seconds: dict[str, float] = field(default_factory=dict)


def precompute(lm: LoadedModel, ds: Dataset, cache: ArrayCache | None,
               executor: Executor | None = None) -> Summary:
    """Every precomputed analysis (computed by `executor`, default here), those that read
    only the capturing forward together (one capture per batch for all of them), each
    dataset step here as soon as the analyses it reads are done (so that the first views
    exist early; a step that reads an analysis left out of the precompute, such as the
    faithfulness table's sample, at the end); prints each step's line with its time."""
    summary = Summary(set(range(len(ds))), dict(ds.skipped))
    results: dict[str, RunResult] = {}
    pending = list(DATASET_STEPS.values())
    chosen = [a for a in ANALYSES.values() if a.precompute]
    for group in [[chosen[p] for p in g] for g in batch_groups(chosen)]:
        begin = time.perf_counter()
        names = " + ".join(a.name for a in group)
        got = with_bar(names, len(ds), lambda p: run_many(
            lm, ds, list(range(len(ds))), [Request(a) for a in group], cache=cache,
            progress=p, executor=executor))
        seconds = time.perf_counter() - begin
        for analysis, result in zip(group, got):
            results[analysis.name] = result
            summary.skipped.update(result.skipped)
            summary.done &= set(result.arrays)
            summary.seconds[analysis.name] = seconds / len(group)
            print(f"{analysis.name}: {result.from_cache} from the cache, "
                  f"{len(result.arrays) - result.from_cache} computed "
                  + (f"({seconds:.1f} s)" if len(group) == 1 else
                     f"({seconds:.1f} s for {names})"))
        for step in [s for s in pending if all(a.name in results for a in s.reads)]:
            pending.remove(step)
            run_dataset_step(lm, ds, step, cache, results, summary)
    for step in pending:
        run_dataset_step(lm, ds, step, cache, results, summary)
    return summary


def run_dataset_step(lm: LoadedModel, ds: Dataset, step: DatasetStep,
                     cache: ArrayCache | None, results: dict[str, RunResult],
                     summary: Summary) -> None:
    """One dataset step on the per-image `results` at hand; prints its line."""
    begin = time.perf_counter()
    try:
        out = run_step(lm, ds, step, cache=cache, per_image={
            a.name: results[a.name] for a in step.reads if a.name in results},
                       stage=lambda text, fraction: print(f"{step.name}: {text}",
                                                          file=sys.stderr))
    except ValueError as err:
        print(f"{step.name}: not computed ({printable(err)})")
        return
    summary.seconds[step.name] = time.perf_counter() - begin
    line = step.describe(lm, ds, out.arrays)
    print(f"{printable(line)} ({summary.seconds[step.name]:.1f} s)")


def with_bar(name: str, total: int, work: Callable[[Progress], list[RunResult]]
             ) -> list[RunResult]:
    """Run `work` with a progress bar on stderr."""
    with tqdm(total=total, desc=name, unit="img", file=sys.stderr) as bar:
        return work(lambda n, _total: bar.update(n - bar.n))


if __name__ == "__main__":
    sys.exit(main())
