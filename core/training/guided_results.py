"""The measured comparison of keypoint-guided and random token budgets on the demo
(SPEC "Keypoint-guided training"), as ``python -m bench.guided_training --save`` writes
it and the Keypoints page, the report and their CSV read it: one row per token budget
and selection rule, with seconds per epoch, test accuracy after the same epochs and the
training time to a stated test accuracy."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from core.data.paths import BUILTIN_DIRS

SHIPPED = BUILTIN_DIRS["demo"] / "guided_training.json"
RULES = {"all": "all tokens (no selection)", "keypoints": "most keypoints first",
         "random": "random"}


def load(path: Path | None = None) -> dict | None:
    """The saved comparison (default: the one shipped with the demo), None when there is
    none or it cannot be read."""
    try:
        return json.loads((path or SHIPPED).read_text())
    except (OSError, ValueError):
        return None


def save(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")


def run_of(results: dict, budget: float, select: str) -> dict:
    """The run of one token budget and rule (budget 1 has one run, ``all``)."""
    return next(r for r in results["runs"] if r["token_budget"] == budget
                and r["select"] in (select, "all"))


def seconds_to(run: dict, target: float) -> float | None:
    """Training seconds until the end of the first epoch whose test accuracy reaches
    `target` (None: not within the run)."""
    reached = next((k for k, a in enumerate(run["accuracy_per_epoch"]) if a >= target), None)
    return None if reached is None else run["seconds_after_epoch"][reached]


def table(results: dict) -> pd.DataFrame:
    """One row per run, the columns in words with their units."""
    rows = []
    for r in results["runs"]:
        row = {"share of patch tokens kept in training": r["token_budget"],
               "tokens kept per image": r["kept_tokens"],
               "which tokens": RULES[r["select"]],
               "training time per epoch (s)": round(r["seconds_per_epoch"], 1),
               f"test accuracy after {results['epochs']} epochs (%)":
                   round(100 * r["test_accuracy"], 2)}
        for target in results["targets"]:
            seconds = seconds_to(r, target)
            row[f"training time to {100 * target:g}% test accuracy (s)"] = (
                "not reached" if seconds is None else round(seconds))
        rows.append(row)
    return pd.DataFrame(rows)


def in_words(results: dict) -> str:
    """The comparison at half the tokens in the form a non-expert reads."""
    full, guided = run_of(results, 1.0, "all"), run_of(results, 0.5, "keypoints")
    rand = run_of(results, 0.5, "random")
    points = 100 * (guided["test_accuracy"] - rand["test_accuracy"])
    return (f"Training on half of each image's patches, those with the most keypoints, "
            f"takes {guided['seconds_per_epoch']:.0f} s an epoch against "
            f"{full['seconds_per_epoch']:.0f} s with every patch "
            f"({full['seconds_per_epoch'] / guided['seconds_per_epoch']:.2f} times as fast) "
            f"and reaches {100 * guided['test_accuracy']:.1f}% test accuracy after "
            f"{results['epochs']} epochs, {abs(points):.1f} points "
            f"{'above' if points >= 0 else 'below'} half of the patches chosen at random "
            f"({100 * rand['test_accuracy']:.1f}%) and against "
            f"{100 * full['test_accuracy']:.1f}% with every patch.")


def provenance(results: dict) -> str:
    """Where and how the comparison was measured."""
    return (f"Measured by python -m bench.guided_training on {results['date']}, "
            f"{results['machine']}, {results['threads']} torch threads: "
            f"{results['epochs']} epochs on {results['train_images']:,} training images, the "
            f"runs taking turns epoch by epoch; test accuracy on the 10,000 test images with "
            f"every patch. Finding the keypoints of the training set took "
            f"{results['keypoint_detection_seconds']:.0f} s once, before training, and is "
            f"not in the times per epoch.")
