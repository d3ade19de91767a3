"""Train the built-in demo ViT on Fashion-MNIST and write it to ``demo/``.

The model is timm's own ``VisionTransformer`` (so it goes through exactly the
code path of real timm models); ``demo/config.json`` holds its keyword
arguments, the class names and the preprocessing, so timm alone rebuilds it.

Usage: ``python -m core.cli.train_demo [--epochs N] [--data DIR] [--out DIR]``.
The data comes from Debian's ``dataset-fashion-mnist`` package; it is needed
only to train, never at run time.
"""
from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
VIT_KWARGS = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64,
                  depth=6, num_heads=4, mlp_ratio=2.0)
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
    """uint8 N x 28 x 28 -> normalised float N x 1 x 28 x 28."""
    return (torch.tensor(images).float().div(255).unsqueeze(1) - MEAN) / STD


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 2 pixels."""
    flip = torch.rand(x.shape[0]) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (2, 2, 2, 2), value=-MEAN / STD)
    dy, dx = np.random.randint(0, 5, size=2)
    return padded[:, :, dy:dy + 28, dx:dx + 28]


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]."""
    model.eval()
    correct = 0
    for i in range(0, len(images), 1000):
        pred = model(to_input(images[i:i + 1000])).argmax(-1).numpy()
        correct += int((pred == labels[i:i + 1000]).sum())
    return correct / len(images)


def train(train_x: np.ndarray, train_y: np.ndarray, epochs: int, batch: int = 128,
          lr: float = 2e-3, seed: int = 0) -> VisionTransformer:
    """AdamW with warm-up and cosine decay, label smoothing 0.1."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = VisionTransformer(**VIT_KWARGS)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * (len(train_x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1),
                                                pct_start=0.1)
    y_all = torch.from_numpy(train_y.astype(np.int64))
    for epoch in range(epochs):
        model.train()
        order = np.random.permutation(len(train_x))
        for i in range(len(train_x) // batch):
            idx = order[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(model(augment(to_input(train_x[idx]))), y_all[idx],
                                   label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", flush=True)
    return model.eval()


def balanced_sample(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` random examples of every class."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in range(len(CLASS_NAMES))]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data", type=Path, default=FASHION_DIR)
    parser.add_argument("--out", type=Path, default=Path("demo"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train_x = read_idx(args.data / "train-images-idx3-ubyte.gz")
    train_y = read_idx(args.data / "train-labels-idx1-ubyte.gz")
    test_x = read_idx(args.data / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(args.data / "t10k-labels-idx1-ubyte.gz")
    start = time.perf_counter()
    model = train(train_x, train_y, args.epochs)
    seconds = time.perf_counter() - start
    acc = accuracy(model, test_x, test_y)
    print(f"test accuracy (10,000 images): {acc:.4f}; training {seconds:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(args.out / "model.safetensors"))
    config = {
        "vit_kwargs": VIT_KWARGS,
        "class_names": CLASS_NAMES,
        "pretrained_cfg": {"input_size": [1, 28, 28], "mean": [MEAN], "std": [STD],
                           "interpolation": "bilinear", "crop_pct": 1.0,
                           "crop_mode": "center", "num_classes": 10},
        "trained": {"epochs": args.epochs, "seconds": round(seconds, 1),
                    "test_accuracy_10k": round(acc, 4),
                    "threads": torch.get_num_threads()},
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    keep = balanced_sample(test_y, 100)
    np.savez_compressed(args.out / "images.npz", images=test_x[keep],
                        labels=test_y[keep].astype(np.int64), test_index=keep)
    (args.out / "LICENSE-fashion-mnist.txt").write_text(LICENSE)


if __name__ == "__main__":
    main()
