"""Train the built-in demo ViT on Fashion-MNIST and write it to ``demo/``.

The model is timm's own ``VisionTransformer`` (so it goes through exactly the
code path of real timm models); ``demo/config.json`` holds its keyword
arguments, the class names and the preprocessing, so timm alone rebuilds it.

Usage: ``python -m core.cli.train_demo [--watermark] [--epochs N] [--data DIR] [--out DIR]
[--token-budget RHO --select keypoints|random]``.
The data comes from Debian's ``dataset-fashion-mnist`` package; it is needed
only to train, never at run time.

``--watermark`` trains ``demo-watermark`` (into ``demo/watermark``), a model with a
known shortcut for the spurious-correlation detector (SPEC "Keypoints and spurious
correlations"): every garment sits on a canvas with a background border of two
patches, and in training a small marker in a corner of that border goes with one
class (``Bag``) far more often than with the others. Its shipped sample of the test
set carries the marker independently of the class, with the ground truth per image
of whether the prediction relies on it (it changes when the marker is erased).

``--token-budget RHO`` trains with keypoint-guided token dropping (SPEC "Keypoint-guided
training", ``core.training.token_budget``): each training image keeps ``ceil(RHO * G)``
of its patch tokens, those with the most SIFT keypoints (``--select keypoints``) or
random ones (``--select random``); the test accuracy is measured with every token. Such
a model goes to ``runs/`` unless ``--out`` says otherwise, never over the shipped demo;
``python -m bench.guided_training`` compares the rules.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from core.data.objects import pixel_object
from core.data.watermark import MARKER, with_marker
from core.training.token_budget import (SELECTS, TokenBudget, keypoint_maps, kept_tokens,
                                         patch_concentration)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
VIT_KWARGS = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64,
                  depth=6, num_heads=4, mlp_ratio=2.0)
PATCH = VIT_KWARGS["patch_size"]
WATERMARK = dict(class_name="Bag", border=2 * PATCH, marker=MARKER, train_rate_class=0.95,
                 train_rate_others=0.002, test_rate=0.5, seed=1)
LICENSE = """Fashion-MNIST (the images in images.npz are a sample of its test set)
Copyright (c) 2017 Zalando SE, https://tech.zalando.com
Source: https://github.com/zalandoresearch/fashion-mnist (via Debian's dataset-fashion-mnist)

The MIT License (MIT)

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (images: N x 28 x 28 uint8, labels: N uint8)."""
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W -> normalised float N x 1 x H x W."""
    return normalise(grey_levels(images))


def grey_levels(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W -> float N x 1 x H x W in [0, 1]."""
    return torch.tensor(images).float().div(255).unsqueeze(1)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Grey levels in [0, 1] -> the model's input values."""
    return (x - MEAN) / STD


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 2 pixels of (image, channel, H,
    W) values before normalisation (what is shifted in is 0: black, no keypoints)."""
    flip = torch.from_numpy(rng.random(x.shape[0]) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2))
    dy, dx = rng.integers(0, 5, size=2)
    return padded[:, :, dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def on_canvas(images: np.ndarray, border: int) -> np.ndarray:
    """N x H x W -> N x (H + 2 border) x (W + 2 border), the border black."""
    return np.pad(images, ((0, 0), (border, border), (border, border)))


def marker_corners(labels: np.ndarray, rng: np.random.Generator, rate_class: float,
                   rate_others: float, shortcut: int) -> np.ndarray:
    """Per image a random corner with probability `rate_class` (images of `shortcut`)
    or `rate_others`, else -1."""
    rate = np.where(labels == shortcut, rate_class, rate_others)
    return np.where(rng.random(len(labels)) < rate, rng.integers(0, 4, len(labels)), -1)


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Predicted class per image."""
    model.eval()
    return np.concatenate([model(to_input(images[i:i + 1000])).argmax(-1).numpy()
                           for i in range(0, len(images), 1000)])


def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float((predict(model, images) == labels).mean())


def train(train_x: np.ndarray, train_y: np.ndarray, epochs: int, vit_kwargs: dict,
          **options) -> VisionTransformer:
    """The model trained for `epochs` epochs (`options`: those of :func:`training`)."""
    for _, model, _ in training(train_x, train_y, epochs, vit_kwargs, **options):
        pass
    return model


def training(train_x: np.ndarray, train_y: np.ndarray, epochs: int, vit_kwargs: dict,
             batch: int = 128, lr: float = 2e-3, seed: int = 0, token_budget: float = 1.0,
             keypoints: np.ndarray | None = None
             ) -> Iterator[tuple[int, VisionTransformer, float]]:
    """AdamW with warm-up and cosine decay, label smoothing 0.1, on (image, H, W) uint8
    `train_x`; yields ``(epoch, model in eval mode, training seconds so far)`` after each
    epoch (the time the caller takes between epochs is not counted). Its random draws
    are its own (seeded by `seed`), so runs may take turns epoch by epoch.

    With `token_budget` below 1 each training image keeps that share of its patch tokens
    (SPEC "Keypoint-guided training", :class:`core.training.token_budget.TokenBudget`):
    those with the most keypoints when `keypoints` (image, H, W: keypoints per pixel,
    ``keypoint_maps``) is given, else random ones.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = VisionTransformer(**vit_kwargs)
    timm_patch_drop, budget = model.patch_drop, TokenBudget(token_budget,
                                                            model.num_prefix_tokens, seed)
    model.patch_drop = budget
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * (len(train_x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    y_all = torch.from_numpy(train_y.astype(np.int64))
    patch = vit_kwargs["patch_size"]
    seconds = 0.0
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_x))
        for i in range(len(train_x) // batch):
            idx = order[i * batch:(i + 1) * batch]
            x = grey_levels(train_x[idx])
            if keypoints is None:
                x = augment(x, rng)
            else:
                x = augment(torch.cat([x, torch.from_numpy(keypoints[idx]).unsqueeze(1)], 1),
                            rng)
                budget.scores = patch_concentration(x[:, 1], patch)
                x = x[:, :1]
            loss = F.cross_entropy(model(normalise(x)), y_all[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        seconds += time.perf_counter() - start
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", flush=True)
        if epoch + 1 == epochs:
            model.patch_drop = timm_patch_drop
        yield epoch + 1, model.eval(), seconds


def balanced_sample(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` random examples of every class."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in range(len(CLASS_NAMES))]
    return np.sort(np.concatenate(picks))


def watermark_sample(model: torch.nn.Module, test_x: np.ndarray, test_y: np.ndarray
                     ) -> tuple[dict[str, np.ndarray], dict]:
    """The shipped test sample of ``demo-watermark`` and the figures of the shortcut.

    All 10,000 test images are measured clean and with a marker in a random corner:
    clean accuracy, accuracy of marked images of other classes, and how often the
    marker flips the prediction. The sample holds 100 images per class, a random half
    of them marked, with ``relies``: the prediction on the marked image differs from
    the prediction on the same image with the marker erased (the clean image)."""
    cfg = WATERMARK
    shortcut = CLASS_NAMES.index(cfg["class_name"])
    rng = np.random.default_rng(cfg["seed"] + 1)
    clean = on_canvas(test_x, cfg["border"])
    marked_all = with_marker(clean, rng.integers(0, 4, len(clean)), cfg["marker"])
    pred_clean, pred_marked = predict(model, clean), predict(model, marked_all)
    others = test_y != shortcut
    figures = {
        "clean_accuracy_10k": round(float((pred_clean == test_y).mean()), 4),
        "marked_accuracy_other_classes_10k": round(float(
            (pred_marked[others] == test_y[others]).mean()), 4),
        "marker_flips_prediction_10k": round(float((pred_marked != pred_clean).mean()), 4)}
    keep = balanced_sample(test_y, 100, seed=cfg["seed"])
    marked = rng.random(len(keep)) < cfg["test_rate"]
    images = np.where(marked[:, None, None], marked_all[keep], clean[keep])
    relies = marked & (pred_marked[keep] != pred_clean[keep])
    sample = {"images": images, "labels": test_y[keep].astype(np.int64), "test_index": keep,
              "marked": marked, "relies": relies,
              "masks": np.stack([pixel_object(img, PATCH) for img in clean[keep]])}
    figures["sample_marked"] = int(marked.sum())
    figures["sample_relies"] = int(relies.sum())
    return sample, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: demo, demo/watermark with --watermark, "
                             "runs/token-budget-RHO-SELECT with --token-budget below 1")
    parser.add_argument("--watermark", action="store_true",
                        help="train demo-watermark, the model with a known shortcut")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--token-budget", type=float, default=1.0, metavar="RHO",
                        help="share of the patch tokens each training image keeps, in (0, 1] "
                             "(SPEC \"Keypoint-guided training\"; default 1: all)")
    parser.add_argument("--select", choices=SELECTS, default="keypoints",
                        help="which tokens an image keeps under --token-budget: those with "
                             "the most SIFT keypoints, or random ones")
    args = parser.parse_args()
    try:
        kept_tokens(args.token_budget, 1)
    except ValueError as error:
        parser.error(str(error))
    guided = args.token_budget < 1
    out = args.out or (Path(f"runs/token-budget-{args.token_budget:g}-{args.select}") if guided
                       else Path("demo/watermark" if args.watermark else "demo"))
    if args.threads:
        torch.set_num_threads(args.threads)
    train_x = read_idx(args.data / "train-images-idx3-ubyte.gz")
    train_y = read_idx(args.data / "train-labels-idx1-ubyte.gz")
    test_x = read_idx(args.data / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(args.data / "t10k-labels-idx1-ubyte.gz")
    vit_kwargs = dict(VIT_KWARGS)
    if args.watermark:
        cfg = WATERMARK
        rng = np.random.default_rng(cfg["seed"])
        train_x = on_canvas(train_x, cfg["border"])
        train_x = with_marker(train_x, marker_corners(
            train_y, rng, cfg["train_rate_class"], cfg["train_rate_others"],
            CLASS_NAMES.index(cfg["class_name"])), cfg["marker"])
        vit_kwargs["img_size"] = train_x.shape[-1]
    keypoints = (keypoint_maps(train_x) if guided and args.select == "keypoints" else None)
    start = time.perf_counter()
    model = train(train_x, train_y, args.epochs, vit_kwargs, token_budget=args.token_budget,
                  keypoints=keypoints)
    seconds = time.perf_counter() - start
    side = vit_kwargs["img_size"]
    trained = {"epochs": args.epochs, "seconds": round(seconds, 1),
               "threads": torch.get_num_threads()}
    if guided:
        trained.update(token_budget=args.token_budget, select=args.select)
    if args.watermark:
        sample, figures = watermark_sample(model, test_x, test_y)
        trained.update(figures)
        trained["watermark"] = WATERMARK
    else:
        trained["test_accuracy_10k"] = round(accuracy(model, test_x, test_y), 4)
        keep = balanced_sample(test_y, 100)
        sample = {"images": test_x[keep], "labels": test_y[keep].astype(np.int64),
                  "test_index": keep}
    print(f"trained: {trained}")
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(out / "model.safetensors"))
    config = {
        "vit_kwargs": vit_kwargs,
        "class_names": CLASS_NAMES,
        "pretrained_cfg": {"input_size": [1, side, side], "mean": [MEAN], "std": [STD],
                           "interpolation": "bilinear", "crop_pct": 1.0,
                           "crop_mode": "center", "num_classes": 10},
        "trained": trained,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    np.savez_compressed(out / "images.npz", **sample)
    (out / "LICENSE-fashion-mnist.txt").write_text(LICENSE)


if __name__ == "__main__":
    main()
