"""The network probe before a pretrained download: the weights are cached, downloads
are off, or their server answers within PROBE_TIMEOUT seconds."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import torch

PROBE_TIMEOUT = 5.0  # seconds to reach the server of pretrained weights


def check_reachable(cfg: dict) -> None:
    """Raise OSError unless the pretrained weights of `cfg` are cached, downloads are
    off (timm then fails at once) or their server answers within PROBE_TIMEOUT."""
    import huggingface_hub
    import requests
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE:
        return
    if cfg.get("hf_hub_id"):
        repo = cfg["hf_hub_id"].split("@")[0]
        if any(isinstance(huggingface_hub.try_to_load_from_cache(repo, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")):
            return
        address = constants.ENDPOINT
    elif cfg.get("url"):
        if (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])).is_file():
            return
        parts = urllib.parse.urlsplit(cfg["url"])
        address = f"{parts.scheme}://{parts.netloc}"
    else:
        return
    try:
        requests.head(address, timeout=PROBE_TIMEOUT)
    except requests.RequestException as err:
        raise OSError(f"{address} could not be reached within {PROBE_TIMEOUT:g} s: "
                      f"{type(err).__name__}") from None
