"""Model loading: demo, timm names, local checkpoints, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from core.model.errors import ModelLoadError
from core.model.loaded import unnormalise
from core.model.loading import from_module, load_model
from testing.models import random_input


def test_demo_model_shape_and_preprocessing(demo):
    assert (demo.num_layers, demo.num_heads, demo.grid, demo.num_prefix_tokens) == (6, 4, (7, 7), 1)
    assert len(demo.class_names) == 10 and demo.class_names[9] == "Ankle boot"
    assert demo.data_config["input_size"] == (1, 28, 28)
    assert tuple(demo.data_config["mean"]) == (0.2860,)  # from the shipped config, not hard-coded
    assert demo.identity.startswith("demo@")



def test_unnormalise_gives_back_the_pixels_of_a_batch_and_of_one_image(demo, deit_tiny):
    lm, _ = deit_tiny
    colour = (40, 120, 250)  # one colour per channel: the same after any resize and crop
    for model, mode in ((demo, "L"), (lm, "RGB")):
        assert model.image_mode == mode
        image = Image.new("RGB", (50, 40), colour).convert(mode)
        x = model.transform(image)
        expected = np.broadcast_to(np.asarray(image, np.float32)[:1, :1].reshape(1, 1, -1)
                                   / 255, (*x.shape[1:], x.shape[0]))
        batch = unnormalise(model, torch.stack([x, x]))
        np.testing.assert_allclose(batch.permute(0, 2, 3, 1).numpy(), [expected] * 2,
                                   atol=1e-5)
        np.testing.assert_allclose(model.to_display(x), expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin"])
def test_timm_name_with_local_checkpoint(tmp_path, suffix):
    torch.manual_seed(0)
    source = timm.create_model("deit_tiny_patch16_224", pretrained=False).eval()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    lm = load_model("deit_tiny_patch16_224", path, device="cpu")
    x = random_input(lm, batch=1)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), source(x), rtol=1e-5, atol=1e-5)
    assert lm.class_names[0].startswith("tench")  # ImageNet names from timm's class info


def test_same_weights_same_identity_other_weights_other_identity():
    torch.manual_seed(0)
    a = from_module(timm.create_model("vit_tiny_patch16_224", depth=1), "m", device="cpu")
    torch.manual_seed(0)
    b = from_module(timm.create_model("vit_tiny_patch16_224", depth=1), "m", device="cpu")
    torch.manual_seed(1)
    c = from_module(timm.create_model("vit_tiny_patch16_224", depth=1), "m", device="cpu")
    assert a.identity == b.identity != c.identity


def test_checkpoint_that_does_not_match_names_the_keys(tmp_path):
    state = timm.create_model("deit_tiny_patch16_224", pretrained=False).state_dict()
    del state["blocks.0.attn.qkv.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelLoadError, match=r"1 tensor missing, 1 unexpected \("
                                             r"blocks.0.attn.qkv.weight missing; "
                                             r"extra.weight unexpected\)"):
        load_model("deit_tiny_patch16_224", path, device="cpu")


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto"])
def test_non_vit_is_refused_with_the_reason(name):
    with pytest.raises(ModelLoadError, match="not supported.*timm's Attention"):
        from_module(timm.create_model(name, pretrained=False), name)


def test_unknown_model_name():
    with pytest.raises(ModelLoadError, match="not a timm model name"):
        load_model("vit_does_not_exist_patch16", device="cpu")


def test_pretrained_download_offline_says_how_to_pass_a_checkpoint(monkeypatch, tmp_path):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="--checkpoint"):
        load_model("vit_tiny_patch16_224", device="cpu")


def test_missing_or_unsupported_checkpoint_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("deit_tiny_patch16_224", tmp_path / "nope.safetensors")
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="unsupported file type"):
        load_model("deit_tiny_patch16_224", tmp_path / "w.ckpt")
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match="could not be read"):
        load_model("deit_tiny_patch16_224", tmp_path / "broken.pth")


def test_device_setting_overrides(monkeypatch):
    from core.model.device import pick_device
    monkeypatch.setenv("VIT_EXPLORER_DEVICE", "cpu")
    assert pick_device().type == "cpu"
    assert pick_device("meta").type == "meta"
