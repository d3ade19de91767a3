"""Images per second of the batch precompute's per-image analyses (every analysis the
precompute runs, default settings, no cache) on the first IMAGES demo images: the
local engine (all cores), then Ray with 1 and 2 workers (a local Ray cluster of 1, then
2 CPUs; each task uses one CPU thread; the cluster's start and the workers' first model
load are not timed). Then the cost of one image of ViT-B/16 (random init, 224 px) on
this machine's CPU, for the README's estimate for ImageNet-val. Last lines are the
headlines.
"""
from __future__ import annotations

import time

import ray
import timm
import torch

from core import ANALYSES, from_module, load_dataset, load_model, run
from core import ray_executor

IMAGES = 256
VIT_B_IMAGES = 2
IMAGENET_VAL = 50_000


def images_per_second(lm, ds, executor=None, images: int = IMAGES) -> float:
    indices = list(range(images))
    start = time.perf_counter()
    for analysis in ANALYSES.values():
        if analysis.precompute:
            result = run(lm, ds, indices, analysis, executor=executor)
            assert len(result.arrays) == images and not result.skipped, analysis.name
    return images / (time.perf_counter() - start)


def vit_b16_seconds_per_image(ds) -> float:
    """Every precomputed analysis on VIT_B_IMAGES demo images resized to 224 px."""
    model = timm.create_model("vit_base_patch16_224", pretrained=False)
    return 1 / images_per_second(from_module(model, "vit_base_patch16_224", device="cpu"),
                                 ds, images=VIT_B_IMAGES)


def main() -> None:
    lm = load_model("demo", device="cpu")
    ds = load_dataset("demo", lm.class_names)
    local = images_per_second(lm, ds)
    speed = {}
    for workers in (1, 2):
        ray_executor.start(workers=workers)
        executor = ray_executor.RayExecutor(lm)
        for _ in range(workers):  # every worker process started, its model loaded
            run(lm, ds, list(range(64 * workers)), ANALYSES["forward"], executor=executor)
        speed[workers] = images_per_second(lm, ds, executor)
        ray.shutdown()
    vit_b = vit_b16_seconds_per_image(ds)
    cores = torch.get_num_threads()
    print(f"ViT-B/16 on this CPU ({cores} threads): {vit_b:.1f} s per image for every "
          f"precomputed analysis; ImageNet-val ({IMAGENET_VAL} images): "
          f"{vit_b * IMAGENET_VAL / 3600:.0f} h here, {vit_b * cores * IMAGENET_VAL / 3600:.0f} "
          "CPU-core hours")
    print(f"demo, {IMAGES} images, analyses: "
          + ", ".join(n for n, a in ANALYSES.items() if a.precompute))
    print(f"local_images_per_second: {local:.2f}")
    print(f"ray_1_worker_images_per_second: {speed[1]:.2f}")
    print(f"ray_2_workers_images_per_second: {speed[2]:.2f}")
    print(f"vit_b16_cpu_seconds_per_image: {vit_b:.1f}")
    print(f"ray_2_workers_vs_1: {speed[2] / speed[1]:.2f}")
    print(f"ray_2_workers_vs_local: {speed[2] / local:.2f}")


if __name__ == "__main__":
    main()
