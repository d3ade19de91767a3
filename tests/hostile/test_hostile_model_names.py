"""No model a visitor can name raises to the page: timm names of each kind (a
classifier, a headless model, windowed and convolutional ones, a name timm does not
know, a checkpoint of another model) with random-init checkpoints, through every page
in AppTest. A refusal with a message is fine; an exception is not. The pages that run
many forwards of a 224-pixel model (importance, rollout, compare) are marked slow."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from ui.pages import PAGES

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SLOW_PAGES = {"importance", "rollout", "compare"}
# the name in the link -> (the architecture its checkpoint is saved from, what the
# sidebar must say; None: the model loads)
NAMES = {
    "vit_tiny_patch16_224": ("vit_tiny_patch16_224", None),  # a classifier
    "eva02_tiny_patch14_224.mim_in22k": ("eva02_tiny_patch14_224.mim_in22k", None),  # headless
    "swin_tiny_patch4_window7_224": ("swin_tiny_patch4_window7_224", "windowed attention"),
    "resnet18": ("resnet18", "Convolutional models"),
    "vit_small_patch16_224.dino": ("vit_tiny_patch16_224", "does not fit"),
    "no_such_model_v9": ("vit_tiny_patch16_224", "is not a timm model name"),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("names")
    saved = {}
    for source in {source for source, _ in NAMES.values()}:
        torch.manual_seed(0)
        saved[source] = folder / f"{source}.safetensors"
        save_file(timm.create_model(source, pretrained=False).state_dict(), str(saved[source]))
    return saved


def cases() -> list:
    out = []
    for name, (_, refusal) in NAMES.items():
        for page in PAGES:
            marks = [pytest.mark.slow] if refusal is None and page.name in SLOW_PAGES else []
            out.append(pytest.param(name, page.path, id=f"{name}-{page.name}", marks=marks))
    return out


@pytest.mark.parametrize("name,page", cases())
def test_no_model_name_raises_to_a_page(checkpoints, name, page, tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIT_EXPLORER_DEVICE", "cpu")
    source, refusal = NAMES[name]
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update({"model": name, "checkpoint": str(checkpoints[source])})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    shown = " ".join(e.value for e in at.sidebar.error)
    if refusal is None:
        assert not shown, shown
        assert any(name in c.value for c in at.sidebar.caption)
    else:
        assert refusal in shown.replace("\\", ""), shown
