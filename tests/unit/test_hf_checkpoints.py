"""Hugging Face ``transformers`` checkpoints: small random-init ViT, DeiT and DINOv2
models saved with save_pretrained open as timm models whose logits or embeddings
equal ``transformers``' own forward; hub ids fail fast offline; other architectures,
models over the budget or off the allow-list are refused with the reason."""
from __future__ import annotations

import json
import time

import pytest
import torch
import transformers as tf

from core.data.paths import PathNotAllowed
from core.model import forward
from core.model._rerun import forward_from, states
from core.model.errors import ModelLoadError
from core.model.loading import load_model

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=8,
             image_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
VIT = dict(SMALL, intermediate_size=128)
DINO = dict(SMALL, patch_size=14, image_size=56, mlp_ratio=3, layer_norm_eps=1e-6)
RESIZE = {"do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2,
          "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]}
SQUASH_CROP = {"do_resize": True, "size": {"height": 40, "width": 40}, "do_center_crop": True,
               "crop_size": {"height": 32, "width": 32}, "resample": 3,
               "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
CROP = {"do_resize": True, "size": {"shortest_edge": 48}, "do_center_crop": True,
        "crop_size": {"height": 42, "width": 42}, "resample": 3,
        "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
# case -> (transformers class, config, preprocessor config, output read, prefix tokens, grid)
CASES = {
    "vit": (tf.ViTForImageClassification, tf.ViTConfig(**VIT, num_labels=5), RESIZE,
            "logits", 1, (4, 4)),
    "vit_no_qkv_bias_tanh_gelu": (
        tf.ViTForImageClassification,
        tf.ViTConfig(**VIT, num_labels=3, qkv_bias=False, hidden_act="gelu_pytorch_tanh"),
        RESIZE, "logits", 1, (4, 4)),
    "vit_headless_nonsquare": (tf.ViTModel, tf.ViTConfig(**dict(VIT, image_size=[32, 48])),
                               {}, "cls", 1, (4, 6)),
    "deit": (tf.DeiTForImageClassification, tf.DeiTConfig(**VIT, num_labels=4), SQUASH_CROP,
             "logits", 2, (4, 4)),
    "deit_teacher": (tf.DeiTForImageClassificationWithTeacher,
                     tf.DeiTConfig(**VIT, num_labels=4), RESIZE, "logits", 2, (4, 4)),
    "dinov2": (tf.Dinov2Model, tf.Dinov2Config(**DINO), CROP, "pooler_output", 1, (3, 3)),
    "dinov2_same_size": (tf.Dinov2Model, tf.Dinov2Config(**DINO), {}, "pooler_output", 1,
                         (4, 4)),
    "dinov2_registers": (tf.Dinov2WithRegistersModel,
                         tf.Dinov2WithRegistersConfig(**DINO, num_register_tokens=2), CROP,
                         "pooler_output", 3, (3, 3)),
    "dinov2_classifier": (tf.Dinov2ForImageClassification,
                          tf.Dinov2Config(**DINO, num_labels=6), CROP, "logits", 1, (3, 3)),
    "dinov2_registers_classifier": (
        tf.Dinov2WithRegistersForImageClassification,
        tf.Dinov2WithRegistersConfig(**DINO, num_register_tokens=2, num_labels=6), CROP,
        "logits", 3, (3, 3)),
}


def save(folder, case: str) -> torch.nn.Module:
    """Save a random `case` model (every parameter perturbed, so that no weight keeps
    its neutral init) and its preprocessor config into `folder`; the model."""
    cls, config, preprocessor, _, _, _ = CASES[case]
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    if preprocessor:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return model


def expected(model: torch.nn.Module, x: torch.Tensor, read: str) -> torch.Tensor:
    with torch.no_grad():
        out = model(pixel_values=x)
    return out.last_hidden_state[:, 0] if read == "cls" else getattr(out, read)


@pytest.mark.parametrize("case", CASES)
def test_a_folder_gives_the_transformers_forward(tmp_path, case):
    """The converted model, the engine's capture forward and its re-run from a layer
    all give ``transformers``' logits or embedding."""
    source = save(tmp_path, case)
    _, config, _, read, prefix, grid = CASES[case]
    lm = load_model(str(tmp_path), device="cpu")
    assert (lm.num_layers, lm.num_heads, lm.num_prefix_tokens, lm.grid) == (2, 4, prefix, grid)
    torch.manual_seed(1)
    x = torch.randn(2, *lm.data_config["input_size"])
    want = expected(source, x, read)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(forward(lm, x).logits, want, rtol=0, atol=1e-5)
    rerun, _ = forward_from(lm, states(lm, x).inputs[1], 1)  # fast path, final rows only
    torch.testing.assert_close(rerun, want, rtol=0, atol=1e-5)
    headless = read != "logits"
    assert lm.model.num_classes == (0 if headless else config.num_labels)
    assert lm.class_names == ([] if headless else [config.id2label[i]
                                                   for i in range(config.num_labels)])
    assert (lm.has_classes, lm.num_outputs) == (not headless, want.shape[1])


@pytest.mark.parametrize("case,processor", [("vit", tf.ViTImageProcessor),
                                            ("deit", tf.DeiTImageProcessor),
                                            ("dinov2", tf.BitImageProcessor)])
def test_the_transform_gives_the_transformers_image_processor_pixels(tmp_path, case,
                                                                     processor):
    """Resize (both edges or the shortest), crop and normalisation as transformers does
    them, on an image that is not square (interpolation kernels differ a little)."""
    from PIL import Image, ImageFilter
    save(tmp_path, case)
    lm = load_model(str(tmp_path), device="cpu")
    pixels = torch.Generator().manual_seed(0)
    noise = (torch.rand(60, 90, 3, generator=pixels) * 255).to(torch.uint8).numpy()
    image = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2))
    want = processor(**CASES[case][2])(image, return_tensors="pt")["pixel_values"][0]
    got = lm.transform(image)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 0.1 and (got - want).abs().mean() < 0.005


def test_preprocessing_comes_from_the_preprocessor_config(tmp_path):
    save(tmp_path / "vit", "vit")
    save(tmp_path / "deit", "deit")
    save(tmp_path / "dino", "dinov2")
    vit = load_model(str(tmp_path / "vit"), device="cpu").data_config
    assert (vit["mean"], vit["std"], vit["interpolation"]) == ((0.5, 0.4, 0.3),
                                                               (0.2, 0.25, 0.3), "bilinear")
    assert (vit["input_size"], vit["crop_mode"], vit["crop_pct"]) == ((3, 32, 32), "squash", 1)
    deit = load_model(str(tmp_path / "deit"), device="cpu").data_config
    assert (deit["crop_mode"], deit["crop_pct"]) == ("squash", 32 / 40)
    dino = load_model(str(tmp_path / "dino"), device="cpu").data_config
    assert dino["input_size"] == (3, 42, 42) and dino["interpolation"] == "bicubic"
    assert dino["crop_mode"] == "center" and dino["crop_pct"] == pytest.approx(42 / 48)


def test_the_hub_form_offline_fails_fast_with_what_to_do(monkeypatch, tmp_path):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    begin = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"Could not download transformers:google/vit-"
                                             r"base-patch16-224 .*hf download .*folder"):
        load_model("transformers:google/vit-base-patch16-224", device="cpu")
    assert time.perf_counter() - begin < 10


@pytest.mark.parametrize("config,why", [
    (tf.SwinConfig(architectures=["SwinForImageClassification"]),
     "SwinForImageClassification, which the explorer cannot open: only plain ViT"),
    (tf.BeitConfig(architectures=["BeitModel"]), "BeitModel, which the explorer cannot open"),
    (tf.ViTMAEConfig(architectures=["ViTMAEModel"]), "ViTMAEModel, which the explorer"),
])
def test_another_architecture_is_refused_with_the_reason(tmp_path, config, why):
    config.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=why) as err:
        load_model(str(tmp_path), device="cpu")
    assert "ViTModel, ViTForImageClassification, DeiTForImageClassification" in str(err.value)
    assert len(str(err.value)) < 400


@pytest.mark.parametrize("config,why", [
    (tf.ViTConfig(**dict(VIT, hidden_act="elu"), architectures=["ViTModel"]), "activation 'elu'"),
    (tf.ViTConfig(**dict(VIT, num_attention_heads=3), architectures=["ViTModel"]),
     "heads of another width than 64 / 3"),
    (tf.Dinov2Config(**DINO, use_swiglu_ffn=True, architectures=["Dinov2Model"]),
     "a SwiGLU MLP"),
    (tf.Dinov2Config(**DINO, num_labels=0, architectures=["Dinov2ForImageClassification"]),
     r"no classifier \(num_labels 0; open it as a Dinov2Model\)"),
])
def test_a_supported_architecture_with_parts_timm_lacks_is_refused(tmp_path, config, why):
    config.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=f"{why}.*conversion to timm does not support"):
        load_model(str(tmp_path), device="cpu")


def test_budget_and_allow_list_are_checked_before_the_weights_are_read(tmp_path, monkeypatch):
    tf.ViTConfig(**VIT, architectures=["ViTModel"]).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"never read")
    monkeypatch.setenv("VIT_EXPLORER_MAX_PARAMS", "1000")
    with pytest.raises(ModelLoadError, match=r"parameters, above this server's budget of 1,000"):
        load_model(str(tmp_path), device="cpu")
    monkeypatch.delenv("VIT_EXPLORER_MAX_PARAMS")
    monkeypatch.setenv("VIT_EXPLORER_MODELS", "demo*,transformers:*")
    with pytest.raises(ModelLoadError, match="not among the models this server accepts"):
        load_model(str(tmp_path), device="cpu")
    with pytest.raises(ModelLoadError, match="could not be read|is not a model.s weights"):  # now it reads them
        monkeypatch.setenv("VIT_EXPLORER_MODELS", f"{tmp_path.resolve()}*")
        load_model(str(tmp_path), device="cpu")


def test_a_folder_outside_the_data_roots_or_without_config_is_refused(tmp_path, monkeypatch):
    (tmp_path / "inside").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path / "inside"), device="cpu")
    monkeypatch.setenv("VIT_EXPLORER_DATA_ROOTS", str(tmp_path / "inside"))
    with pytest.raises(PathNotAllowed):
        load_model(str(tmp_path / "elsewhere"), device="cpu")
    with pytest.raises(ModelLoadError, match="holds its own weights"):
        load_model(str(tmp_path / "inside"), tmp_path / "inside" / "w.safetensors")


def test_weights_that_config_json_does_not_describe_lead_with_what_they_look_like(tmp_path):
    save(tmp_path, "vit")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(dict(config, hidden_size=128,
                                                          intermediate_size=256)))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path), device="cpu")
    message = str(err.value)
    assert message.startswith("The checkpoint looks like a ViT with 2 blocks, width 64, "
                              "patch 8, 32 x 32 input"), message
    assert message.count(" vs ") <= 3 and "config.json does not describe" in message
    assert len(message) < 400, len(message)


def test_the_hub_form_reads_the_config_first_and_the_weights_once_allowed(tmp_path,
                                                                         monkeypatch):
    """snapshot_download (faked: the hub's copy is a saved folder) is asked for the
    configs, and for the weights only once the model is within the budget."""
    import huggingface_hub
    import huggingface_hub.constants
    source = save(tmp_path / "hub", "dinov2")
    asked: list[list[str]] = []

    def snapshot(repo, allow_patterns):
        assert repo == "org/small-dinov2"
        asked.append(list(allow_patterns))
        snap = tmp_path / "snapshot"
        snap.mkdir(exist_ok=True)
        for name in allow_patterns:
            if (tmp_path / "hub" / name).is_file():
                (snap / name).write_bytes((tmp_path / "hub" / name).read_bytes())
        return str(snap)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no probe
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    monkeypatch.setenv("VIT_EXPLORER_MAX_PARAMS", "1000")
    with pytest.raises(ModelLoadError, match="above this server's budget"):
        load_model("transformers:org/small-dinov2", device="cpu")
    assert asked == [["config.json", "preprocessor_config.json"]]
    monkeypatch.delenv("VIT_EXPLORER_MAX_PARAMS")
    lm = load_model("transformers:org/small-dinov2", device="cpu")
    assert asked[-1] == ["model.safetensors"]
    x = torch.randn(1, *lm.data_config["input_size"])
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), expected(source, x, "pooler_output"),
                                   rtol=0, atol=1e-5)


def test_a_ray_worker_rebuilds_the_converted_model_from_its_state(tmp_path):
    from core.model.loading import from_state
    save(tmp_path, "deit_teacher")
    lm = load_model(str(tmp_path), device="cpu")
    copy = from_state(lm.name, lm.model.state_dict(), device="cpu")
    assert copy.identity == lm.identity and copy.class_names == lm.class_names


def test_an_unreadable_config_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json of .* could not be read"):
        load_model(str(tmp_path), device="cpu")
