"""Reading a local checkpoint file into a state dict (.safetensors, or .pth/.pt/.bin
read with ``weights_only``), refusing what is not one with the reason."""
from __future__ import annotations

from pathlib import Path

import torch

from core.model.errors import ModelLoadError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def check_file(path: Path) -> None:
    """Refuse a checkpoint path of an unsupported type or that is not a file."""
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(f"Checkpoint {path}: unsupported file type {path.suffix!r}; "
                             f"use one of {', '.join(CHECKPOINT_SUFFIXES)}.")
    if not path.is_file():
        raise ModelLoadError(f"Checkpoint {path} does not exist.")


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or .pth/.pt/.bin read with weights_only."""
    check_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign files: say which file
        raise ModelLoadError(f"Checkpoint {path} could not be read: {err}") from err
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        kinds = (f"a dict with {sorted({type(k).__name__ for k in state})} keys and "
                 f"{sorted({type(v).__name__ for v in state.values()})} values"
                 if isinstance(state, dict) else f"a {type(state).__name__}")
        raise ModelLoadError(f"Checkpoint {path.name} is not a state dict (it holds {kinds}); "
                             "give a file saved from model.state_dict(): names to tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}
