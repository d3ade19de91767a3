"""Real sizes in the app: each page's first view of one image, from an empty cache, for
a random-init ViT-B/16 at 224 px and a DINOv2-S/14 at 518 px (1,370 tokens; no classes),
and for the families, BEiT-B/16 and EVA-02-Ti/14 (``--models`` picks some).

Each model runs in a child process of its own (so that its peak RSS is its own): the
app (Streamlit's AppTest, the real page scripts) opens the model's random-init
checkpoint on a folder of one 640 x 480 photo-like image; the first page (Overview)
includes loading the model; before each later page the app's array cache is replaced
by an empty one (the model stays loaded), so each time is that page's first view.
The children run with glibc's allocator set as ``make serve`` sets it
(``MALLOC_MMAP_THRESHOLD_``). The same process then times, on that image, exact leave-one-out importance against
its one-backward estimate. Prints per model each page's seconds and the peak RSS,
then the headlines: ``estimate_speedup_vitb16``, ``vitb16_longest_first_view_seconds``
and ``dinov2s518_peak_rss_mb``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {"vitb16": "vit_base_patch16_224", "dinov2s518": "vit_small_patch14_dinov2",
          "beitb16": "beit_base_patch16_224", "eva02t14": "eva02_tiny_patch14_224"}  # the
# last two: the BEiT and EVA-02 families at their real size (EVA-02 tiny has no classes)
PAGES = ["overview", "importance", "strength", "patterns", "rollout", "keypoints",
         "classes", "compare"]
APP = str(Path(__file__).resolve().parents[1] / "app.py")
MMAP_THRESHOLD = "1048576"  # glibc's setting as `make serve` runs the app (the Makefile)


def photo(path: Path) -> None:
    """A 640 x 480 image with smooth colour, edges and texture (SIFT finds keypoints)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640] / 480.0
    img = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.4 + 0.3 * x * y], -1)
    for _ in range(12):
        cy, cx, r = rng.integers(40, 440), rng.integers(40, 600), rng.integers(15, 60)
        img[(y * 480 - cy) ** 2 + (x * 480 - cx) ** 2 < r * r] = rng.random(3)
    img += 0.05 * rng.standard_normal(img.shape)
    Image.fromarray((255 * img.clip(0, 1)).astype(np.uint8)).save(path)


def one_model(key: str) -> dict[str, float]:
    """Every page's first-view seconds, the estimate speedup and the peak RSS (MB) of
    model `key`, measured in this process."""
    import timm
    import torch
    from safetensors.torch import save_file
    from streamlit.testing.v1 import AppTest

    from ui import resources
    name = MODELS[key]
    work = Path(tempfile.mkdtemp())
    (work / "images").mkdir()
    photo(work / "images" / "photo.png")
    torch.manual_seed(0)
    save_file(timm.create_model(name, pretrained=False).state_dict(),
              str(work / "model.safetensors"))
    os.environ["VIT_EXPLORER_DEVICE"] = "cpu"
    out: dict[str, float] = {}
    at = AppTest.from_file(APP, default_timeout=3600)
    at.query_params.update({"model": name, "checkpoint": str(work / "model.safetensors"),
                            "images": str(work / "images")})
    for i, page in enumerate(PAGES):
        os.environ["VIT_EXPLORER_CACHE"] = str(work / f"cache_{page}")
        resources.cache.clear()  # an empty array cache; the model stays loaded
        start = time.perf_counter()
        if i == 0:
            at.run()  # loads the model, shows the default page (Overview)
        else:
            at.switch_page(f"app_pages/{page}_page.py").run()
        out[f"{page}_first_view_seconds"] = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{key} {page}: {out[f'{page}_first_view_seconds']:.1f} s, peak RSS so far "
              f"{rss:.0f} MB", file=sys.stderr, flush=True)
        if at.exception or at.error:
            raise RuntimeError(f"{page}: {at.exception or [e.value for e in at.error]}")
    out.update(estimate_speedup(name, work))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def estimate_speedup(name: str, work: Path) -> dict[str, float]:
    """Exact leave-one-out against its one-backward estimate on the image (one run)."""
    from core.analyses import IMPORTANCE, IMPORTANCE_ESTIMATE
    from core.data.datasets import load_dataset
    from core.data.inputs import load_batch
    from core.engine import compute_images
    from core.model import load_model
    lm = load_model(name, work / "model.safetensors", device="cpu")
    ds = load_dataset(str(work / "images"), lm.class_names)
    x, _, _ = load_batch(lm, ds, [0])
    seconds = {}
    for analysis in (IMPORTANCE_ESTIMATE, IMPORTANCE, IMPORTANCE_ESTIMATE):
        start = time.perf_counter()
        compute_images(lm, x, analysis)
        seconds[analysis.name] = time.perf_counter() - start  # the estimate: its 2nd run
    return {"exact_importance_seconds": seconds["importance"],
            "estimate_seconds": seconds["importance_estimate"],
            "estimate_speedup": seconds["importance"] / seconds["importance_estimate"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_model(args.one)))
        return
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    results = {}
    for key in args.models:
        done = subprocess.run([sys.executable, "-m", "bench.real_size", "--one", key],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD})
        if done.returncode:
            sys.exit(f"{key} failed:\n{done.stderr[-3000:]}")
        results[key] = json.loads(done.stdout.strip().splitlines()[-1])
        for name, value in results[key].items():
            print(f"{key}_{name}: {value:.1f}")
    if "vitb16" in results:
        vitb = results["vitb16"]
        print(f"estimate_speedup_vitb16: {vitb['estimate_speedup']:.1f}")
        print("vitb16_longest_first_view_seconds: "
              f"{max(v for k, v in vitb.items() if k.endswith('first_view_seconds')):.1f}")
    if "dinov2s518" in results:
        print(f"dinov2s518_peak_rss_mb: {results['dinov2s518']['peak_rss_mb']:.0f}")


if __name__ == "__main__":
    main()
