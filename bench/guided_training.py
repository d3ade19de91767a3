"""Keypoint-guided training against random token dropping (SPEC "Keypoint-guided
training"; ``core.training.token_budget``), on Fashion-MNIST at the demo's settings
(``core.cli.train_demo``: its model, optimiser, schedule, augmentation and 12 epochs).

One run per token budget and rule: every token (budget 1, where the rules coincide),
then half and a quarter of the patch tokens, those with the most SIFT keypoints or
random ones. All runs start from the same initial weights and take turns epoch by
epoch, so that a slow moment of a shared machine hits them alike. After each epoch the
test accuracy on the 10,000 test images, with every token (not counted as training
time). Keypoints are detected once for the training set before training; that time is
printed apart. Per run: training seconds per epoch (wall; the process's CPU seconds
beside them), test accuracy after the last epoch, and the training time to 80% and to
85% test accuracy (at an epoch's end). The last lines are the headlines:
``guided_vs_random_accuracy_at_half`` (percentage points) and
``speedup_per_epoch_at_half`` (seconds per epoch with every token / with half of them,
chosen by keypoints).

Usage: ``python -m bench.guided_training [--epochs N] [--train-images N] [--threads N]
[--save PATH]`` (``--save demo/guided_training.json`` is the comparison the app shows).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import torch

from core.cli.train_demo import FASHION_DIR, VIT_KWARGS, accuracy, read_idx, training
from core.training.guided_results import RULES, run_of, save, table
from core.training.token_budget import kept_tokens, keypoint_maps, patch_concentration

RUNS = ((1.0, "all"), (0.5, "keypoints"), (0.5, "random"), (0.25, "keypoints"),
        (0.25, "random"))
TARGETS = (0.8, 0.85)  # the stated test accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12, help="the demo's: 12")
    parser.add_argument("--train-images", type=int, default=None,
                        help="train on the first N training images (default: all 60,000)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--save", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train_x = read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz")[:args.train_images]
    train_y = read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz")[:args.train_images]
    test_x = read_idx(FASHION_DIR / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(FASHION_DIR / "t10k-labels-idx1-ubyte.gz")
    print(f"{len(train_x)} training images, {args.epochs} epochs, {torch.get_num_threads()} "
          f"torch threads, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
          flush=True)
    start = time.perf_counter()
    maps = keypoint_maps(train_x)
    detection = time.perf_counter() - start
    patch = VIT_KWARGS["patch_size"]
    patches = (VIT_KWARGS["img_size"] // patch) ** 2
    holding = (patch_concentration(torch.from_numpy(maps), patch) > 0).sum(1).float().mean()
    print(f"SIFT keypoints of the training set: {detection:.1f} s, "
          f"{maps.sum() / len(maps):.1f} per image, {float(holding):.1f} "
          f"of {patches} patches hold one", flush=True)

    runs = [{"token_budget": budget, "select": select,
             "kept_tokens": kept_tokens(budget, patches), "accuracy_per_epoch": [],
             "seconds_after_epoch": [], "cpu_seconds": 0.0} for budget, select in RUNS]
    trainings = [training(train_x, train_y, args.epochs, VIT_KWARGS, token_budget=budget,
                          keypoints=maps if select == "keypoints" else None)
                 for budget, select in RUNS]
    for epoch in range(args.epochs):
        for run, steps in zip(runs, trainings):
            cpu = time.process_time()
            _, model, seconds = next(steps)
            run["cpu_seconds"] += time.process_time() - cpu
            run["accuracy_per_epoch"].append(accuracy(model, test_x, test_y))
            run["seconds_after_epoch"].append(seconds)
            print(f"epoch {epoch + 1}: rho {run['token_budget']:g} {run['select']}: "
                  f"{seconds / (epoch + 1):.1f} s/epoch, test accuracy "
                  f"{100 * run['accuracy_per_epoch'][-1]:.2f}%", flush=True)
    for run, steps in zip(runs, trainings):
        next(steps, None)  # the end of the training: timm's patch_drop is back
        run.update(seconds_per_epoch=run["seconds_after_epoch"][-1] / args.epochs,
                   cpu_seconds_per_epoch=run.pop("cpu_seconds") / args.epochs,
                   test_accuracy=run["accuracy_per_epoch"][-1])
    results = {"epochs": args.epochs, "train_images": len(train_x),
               "targets": TARGETS, "keypoint_detection_seconds": detection,
               "threads": torch.get_num_threads(),
               "machine": f"{platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} CPUs, no GPU" if not torch.cuda.is_available()
                          else torch.cuda.get_device_name(),
               "date": datetime.date.today().isoformat(), "runs": runs}
    if args.save:
        save(results, args.save)
    print(table(results).to_string(index=False))
    for run in runs:
        print(f"cpu_seconds_per_epoch rho {run['token_budget']:g} {RULES[run['select']]}: "
              f"{run['cpu_seconds_per_epoch']:.1f}")
    full = run_of(results, 1.0, "all")
    print(f"full_tokens_test_accuracy: {100 * full['test_accuracy']:.2f}")
    print(f"keypoint_detection_seconds: {detection:.1f}")
    for name, budget in (("quarter", 0.25), ("half", 0.5)):
        guided, rand = run_of(results, budget, "keypoints"), run_of(results, budget, "random")
        print(f"guided_vs_random_accuracy_at_{name}: "
              f"{100 * (guided['test_accuracy'] - rand['test_accuracy']):.2f}")
        print(f"speedup_per_epoch_at_{name}: "
              f"{full['seconds_per_epoch'] / guided['seconds_per_epoch']:.2f}")

if __name__ == "__main__":
    main()
