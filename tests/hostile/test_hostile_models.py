"""Hostile model specs and checkpoints: models over the server's budget or off its
allow-list are refused before they are built, checkpoints of the wrong kind or shape
get one clear message, and a download that cannot happen fails fast with what to do."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch

from core.model.errors import ModelLoadError
from core.model.loading import load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def builds(monkeypatch) -> list[str]:
    """The device of every timm.create_model call (``meta``: nothing allocated)."""
    devices: list[str] = []
    original = timm.create_model

    def spy(*args, **kwargs):
        devices.append(torch.empty(0).device.type)
        return original(*args, **kwargs)

    monkeypatch.setattr(timm, "create_model", spy)
    return devices


def test_a_model_over_the_parameter_budget_is_refused_before_it_is_built(monkeypatch,
                                                                         builds, tmp_path):
    monkeypatch.setenv("VIT_EXPLORER_MAX_PARAMS", "100000000")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "w.safetensors").write_bytes(b"never read")
    begin = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"1,012,611,432 parameters.*100,000,000"):
        load_model("vit_giant_patch14_224", tmp_path / "w.safetensors", device="cpu")
    assert time.perf_counter() - begin < 10
    assert set(builds) <= {"meta"}, builds


def test_a_model_off_the_allow_list_is_refused(monkeypatch, builds):
    monkeypatch.setenv("VIT_EXPLORER_MODELS", "demo*, deit_*")
    with pytest.raises(ModelLoadError, match="not among the models this server accepts.*deit_"):
        load_model("vit_tiny_patch16_224", device="cpu")
    assert set(builds) <= {"meta"}, builds
    assert load_model("demo", device="cpu").num_layers == 6


def save(tmp_path: Path, obj, name: str = "w.pth") -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("content,kind", [
    ([torch.zeros(2), torch.ones(2)], "a list"),
    (torch.zeros(3, 3), "a Tensor"),
    ({0: torch.zeros(2)}, "int keys"),
    ({"cls_token": 3, "pos_embed": 1.5}, "int values"),
])
def test_a_checkpoint_that_is_not_a_state_dict_gets_one_message(tmp_path, content, kind):
    with pytest.raises(ModelLoadError, match="is not a state dict"):
        load_model("deit_tiny_patch16_224", save(tmp_path, content), device="cpu")


def mismatch(tmp_path: Path, source: str, target: str, **kwargs) -> str:
    """The message of loading a `source` checkpoint (timm `kwargs`) as model `target`."""
    with torch.device("meta"):
        shapes = timm.create_model(source, pretrained=False, **kwargs).state_dict()
    state = {k: torch.zeros(v.shape) for k, v in shapes.items()}
    with pytest.raises(ModelLoadError) as err:
        load_model(target, save(tmp_path, state), device="cpu")
    return str(err.value)


@pytest.mark.parametrize("source,target,lead", [
    ("deit_tiny_patch16_224", "vit_small_patch16_224", "a ViT with 2 blocks, width 192, "
     "patch 16, 224 x 224 input, for example vit_tiny_patch16_224 or deit_tiny_patch16_224"),
    ("deit_small_distilled_patch16_224", "deit_tiny_distilled_patch16_224",
     "a distilled DeiT with 2 blocks, width 384, patch 16, 224 x 224 input, for example "
     "deit_small_distilled_patch16_224"),
    ("beit_base_patch16_224", "vit_tiny_patch16_224", "a BEiT with 2 blocks, width 768, "
     "patch 16, 224 x 224 input, for example beit_base_patch16_224 or "
     "beitv2_base_patch16_224, 12 heads"),
    ("eva02_tiny_patch14_224", "vit_tiny_patch16_224", "an EVA-02 with 2 blocks, width "
     "192, patch 14, 224 x 224 input, for example eva02_tiny_patch14_224"),
    ("eva_giant_patch14_224", "vit_tiny_patch16_224", "an EVA with 2 blocks, width 1408, "
     "patch 14, 224 x 224 input, for example eva_giant_patch14_224"),
])
def test_a_checkpoint_of_another_model_leads_with_what_it_looks_like(tmp_path, source,
                                                                     target, lead):
    message = mismatch(tmp_path, source, target, depth=2)
    assert message.startswith(f"The checkpoint looks like {lead}"), message
    named = message.split(" (")[-1]  # the tensors it names, then the advice
    assert named.count(";") <= 2 and "Give the name of the architecture" in named, message
    assert len(message) < 400, (len(message), message)


def test_a_checkpoint_of_another_size_names_the_tensors_and_their_shapes(tmp_path):
    message = mismatch(tmp_path, "deit_tiny_patch16_224", "vit_small_patch16_224")
    assert message.startswith("The checkpoint looks like a ViT with 12 blocks, width 192")
    assert "151 tensors of another shape (cls_token (1, 1, 192) vs (1, 1, 384); " in message
    assert len(message) < 400, len(message)  # it was 866 characters, the shapes first


def load_without_network(name: str) -> str:
    """load_model(`name`) in a fresh process whose Hugging Face endpoint accepts
    connections and never answers (a network that hangs); its output."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    code = ("import time\nfrom core.model import load_model\nbegin = time.perf_counter()\n"
            "try:\n    load_model(%r, device='cpu')\nexcept Exception as err:\n"
            "    print('ERROR', type(err).__name__, err)\n"
            "print('TOOK', time.perf_counter() - begin)\n") % name
    home = Path(os.environ.get("PYTEST_TMP", "/tmp")) / f"hf-home-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(home), "TORCH_HOME": str(home),
           "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}"}
    try:
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=60).stdout
    finally:
        server.close()


def took(output: str) -> float:
    return float(output.split("TOOK")[-1].strip())


def test_a_non_vit_is_refused_before_any_download():
    out = load_without_network("resnet18")
    assert "ERROR ModelLoadError" in out and "not supported" in out, out
    assert took(out) < 10, out


def test_an_unreachable_download_fails_fast_and_says_how_to_give_a_checkpoint():
    out = load_without_network("vit_tiny_patch16_224")
    assert "ERROR ModelLoadError" in out, out
    assert "Checkpoint file" in out and "sidebar" in out, out
    assert took(out) < 10, out


def test_an_unreachable_hugging_face_hub_id_fails_fast_and_says_what_to_do():
    out = load_without_network("transformers:google/vit-base-patch16-224")
    assert "ERROR ModelLoadError Could not download" in out and "hf download" in out, out
    assert took(out) < 10, out
