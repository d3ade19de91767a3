"""The kernel slot of a loaded model: how its no-capture forwards run on this machine
(oneDNN linear layers from a measured number of tokens, or never), as measured by
``core.model._kernels`` and kept in ``LoadedModel.kernels``."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KernelChoice:
    """How a model's no-capture forwards run on this machine: oneDNN linear layers for
    inputs of at least `onednn_from` tokens (None: never), and the measurements that
    decided it (tokens per call -> best seconds of one block call, stock and oneDNN)."""

    onednn_from: int | None
    seconds: dict[int, tuple[float, float]]

    def describe(self) -> str:
        chosen = ("stock kernels only" if self.onednn_from is None else
                  f"oneDNN from {self.onednn_from:,} tokens per forward")
        sizes = "; ".join(f"{t:,} tokens: stock {s * 1e3:.2f} ms, oneDNN {o * 1e3:.2f} ms "
                          f"({s / o:.2f}x)" for t, (s, o) in sorted(self.seconds.items()))
        return f"{chosen} (one block, measured: {sizes or 'nothing, not on the CPU'})"
