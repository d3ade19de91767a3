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

from core.model.loading import ModelLoadError, load_model

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


def test_a_checkpoint_of_another_size_names_the_tensors_and_what_it_looks_like(tmp_path):
    tiny = timm.create_model("deit_tiny_patch16_224", pretrained=False).state_dict()
    with pytest.raises(ModelLoadError) as err:
        load_model("vit_small_patch16_224", save(tmp_path, tiny), device="cpu")
    message = str(err.value)
    assert "cls_token" in message and "(1, 1, 192)" in message and "(1, 1, 384)" in message
    assert "12 blocks" in message and "width 192" in message and "patch 16" in message
    assert "deit_tiny_patch16_224" in message
    assert len(message) < 2000


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
