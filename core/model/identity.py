"""A model's identity in cache keys: a short hash of its weights."""
from __future__ import annotations

import hashlib

import torch


def weights_hash(model: torch.nn.Module) -> str:
    """A short hash of every parameter and buffer (names, shapes and values)."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
