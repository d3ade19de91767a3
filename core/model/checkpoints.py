"""Reading a local checkpoint file into a state dict (.safetensors, or .pth/.pt/.bin
read with ``weights_only``), refusing what is not one with the reason: a safetensors
header over MAX_HEADER_BYTES before anything else is read, and once the state dict is
read, integer weights where the model has floats and weights that are NaN or
infinite."""
from __future__ import annotations

import struct
from pathlib import Path

import torch

from core.model.errors import ModelLoadError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
MAX_HEADER_BYTES = 16 * 2**20  # a ViT-L's safetensors header is about 40 kB
NAMED_TENSORS = 3  # a refusal names at most this many tensors


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
    if path.suffix == ".safetensors":
        check_header(path)
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


def check_header(path: Path) -> None:
    """Refuse a .safetensors file whose header (the tensor list, JSON) is larger than
    MAX_HEADER_BYTES, from its first 8 bytes alone."""
    with path.open("rb") as f:
        head = f.read(8)
    size = struct.unpack("<Q", head)[0] if len(head) == 8 else None
    if size is None or size > MAX_HEADER_BYTES:
        stated = "no header" if size is None else f"a header of {size:,} bytes"
        raise ModelLoadError(f"Checkpoint {path.name} has {stated}, above the "
                             f"{MAX_HEADER_BYTES // 2**20} MB a model's tensor list needs; "
                             "it is not a model's weights.")


def check_values(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], name: str
                 ) -> None:
    """Refuse a state dict (already known to fit model `name`, whose own state is `own`)
    with integer or boolean weights where the model has floating-point ones (they would
    be converted silently), or with NaN or infinite values (every prediction NaN)."""
    ints = [f"{k} ({str(v.dtype).removeprefix('torch.')})" for k, v in state.items()
            if own[k].is_floating_point() and not v.is_floating_point()]
    if ints:
        raise ModelLoadError(f"The checkpoint of {name!r} holds {len(ints)} integer or boolean "
                             f"tensor(s) where the model has floating-point weights "
                             f"({', '.join(ints[:NAMED_TENSORS])}); give the weights as saved "
                             "in float16, bfloat16 or float32.")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelLoadError(f"The checkpoint of {name!r} holds NaN or infinite values in "
                             f"{len(bad)} tensor(s) ({', '.join(bad[:NAMED_TENSORS])}); its "
                             "training diverged or the file is damaged: give another one.")
