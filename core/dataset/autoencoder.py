"""Convolutional autoencoder of binarised patch matrices (SPEC "Attention
patterns"; paper 001, section 5.4.1): encoder of two convolutions and one
fully connected layer, decoder symmetric; the bottleneck codes are laid out
with t-SNE.

Any grid works: the input is one G x G binarised ``A_patch``; two stride-2
convolutions shrink it to about G/4 x G/4, then an adaptive average pooling
caps that at ``POOLED`` x ``POOLED`` before the fully connected layer (a 196-patch
DeiT gives 49 x 49 -> 12 x 12; the 49-patch demo 13 x 13 -> 12 x 12). The
decoder mirrors it: fully connected, resize back, two stride-2 transposed
convolutions to exactly G x G. Loss: binary cross-entropy on the logits with
the ones weighted by ``(zeros / ones)`` of the training set, clipped to
``MAX_POS_WEIGHT`` (a top-1% matrix is 99% zeros; unweighted, "all zeros" is
already a low loss).

Training runs epochs over all matrices (Adam, batches of ``BATCH_SIZE``) until an
epoch lowers the mean loss by less than ``PLATEAU``, at most ``MAX_EPOCHS``. It
changes no process-wide torch setting (thread count, random state): the server's
other sessions share them. It runs on torch's threads (all the machine's cores by
default), keeps its convolutions in the channels-last layout (a property of its own
tensors), and draws its initial weights and batches from its own seeded generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POOLED = 12
MAX_POS_WEIGHT = 20.0
MAX_EPOCHS = 8
PLATEAU = 0.1  # training stops when an epoch lowers the mean loss by less than 10% (on
# the demo's 24,000 matrices: after 5 epochs, loss 0.080; a 2% plateau is 15+ epochs)
BATCH_SIZE = 128
LEARNING_RATE = 5e-3
CHANNELS_LAST = torch.channels_last  # the convolutions' memory layout: 1.6 times faster
# training than the default layout on the 2-core test machine (oneDNN's kernels for one
# input channel)


@dataclass(frozen=True)
class Config:
    num_patches: int  # G: the matrices are G x G
    code_dim: int = 64
    channels: tuple[int, int] = (8, 16)


def _conv_size(n: int) -> int:
    return (n + 2 - 3) // 2 + 1  # kernel 3, stride 2, padding 1


class PatternAutoencoder(nn.Module):
    """G x G binary matrix -> `code_dim` code -> G x G logits."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.sizes = (config.num_patches, _conv_size(config.num_patches),
                      _conv_size(_conv_size(config.num_patches)))
        self.pooled = min(self.sizes[2], POOLED)
        flat = c2 * self.pooled * self.pooled
        self.conv1 = nn.Conv2d(1, c1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.fc_in = nn.Linear(flat, config.code_dim)
        self.fc_out = nn.Linear(config.code_dim, flat)
        self.deconv2 = nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1)
        self.deconv1 = nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, G, G) -> (N, code_dim)."""
        h = F.relu(self.conv1(x[:, None].float().contiguous(memory_format=CHANNELS_LAST)))
        h = F.relu(self.conv2(h))
        h = F.adaptive_avg_pool2d(h, self.pooled)
        return self.fc_in(h.flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) -> logits (N, G, G)."""
        g, s1, s2 = self.sizes
        h = F.relu(self.fc_out(code)).view(len(code), -1, self.pooled, self.pooled)
        if self.pooled != s2:
            h = F.interpolate(h, size=(s2, s2), mode="nearest")
        h = F.relu(self.deconv2(h, output_size=(s1, s1)))
        return self.deconv1(h, output_size=(g, g))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def initialise(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of every convolution and linear layer, drawn
    from `generator` rather than torch's process-wide random state (which other
    sessions of a shared server use at the same time)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def positive_weight(data: np.ndarray) -> float:
    """Weight of the ones in the loss: zeros / ones, clipped to [1, MAX_POS_WEIGHT]."""
    ones = float(data.mean())
    return float(np.clip((1 - ones) / max(ones, 1e-9), 1.0, MAX_POS_WEIGHT))


def train(data: np.ndarray, config: Config, max_epochs: int = MAX_EPOCHS,
          batch_size: int = BATCH_SIZE, lr: float = LEARNING_RATE,
          plateau: float | None = PLATEAU,
          seed: int = 0, device: str | torch.device = "cpu",
          progress: Callable[[int, int, float], None] | None = None
          ) -> tuple[PatternAutoencoder, np.ndarray]:
    """Train on uint8 `data` (N, G, G) until the epoch's mean loss falls by less than
    `plateau` (a fraction of the previous epoch's; None: never) or for `max_epochs`;
    returns the model (eval mode, on CPU) and the mean training loss of each epoch.
    `progress(epoch, max_epochs, loss)` after each epoch."""
    if len(data) == 0:
        raise ValueError("no matrices to train the autoencoder on")
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):  # built without drawing PyTorch's default initialisation
        model = PatternAutoencoder(config)  # from the process-wide random state
    model = model.to_empty(device="cpu")
    initialise(model, generator)
    model.to(device=device, memory_format=CHANNELS_LAST)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    pos_weight = torch.tensor(positive_weight(data), device=device)
    tensor = torch.from_numpy(np.ascontiguousarray(data))
    losses = []
    for epoch in range(max_epochs):
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(tensor), generator=generator).split(batch_size):
            x = tensor[idx].to(device).float()
            loss = F.binary_cross_entropy_with_logits(model(x), x, pos_weight=pos_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        losses.append(total / count)
        if progress:
            progress(epoch + 1, max_epochs, losses[-1])
        if (plateau is not None and len(losses) > 1
                and losses[-2] - losses[-1] < plateau * losses[-2]):
            break
    return model.cpu().eval(), np.array(losses, np.float32)


@torch.no_grad()
def encode(model: PatternAutoencoder, data: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    """Bottleneck codes (N, code_dim) float32 of uint8 matrices (N, G, G)."""
    device = next(model.parameters()).device
    codes = [model.encode(torch.from_numpy(data[s:s + batch_size]).to(device)).cpu()
             for s in range(0, len(data), batch_size)]
    return torch.cat(codes).numpy() if codes else np.zeros((0, model.config.code_dim), np.float32)
