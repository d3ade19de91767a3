"""A model without class scores in the app (SPEC "Models without class scores"): a
random-init DINO ViT-S/16 (timm builds it with ``num_classes=0``) on the demo images.
Every page opens without an error, says in words that the model has no classes, and
never names a class, a probability or a predicted class of the model."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from core.data.builtin import demo_dataset
from ui.pages import PAGES, by_name

pytestmark = pytest.mark.slow  # left out of `make check` (the inner loop)

APP = str(Path(__file__).resolve().parents[2] / "app.py")
MODEL = "vit_small_patch16_224.dino"
NO_CLASSES = "No classes: explained by similarity to a reference embedding"
FORBIDDEN = re.compile(r"probabilit|predicted class|top-5|prediction without", re.I)


@pytest.fixture(scope="module")
def link(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dino")
    mp = pytest.MonkeyPatch()
    mp.setenv("VIT_EXPLORER_CACHE", str(folder / "cache"))
    mp.setenv("VIT_EXPLORER_DEVICE", "cpu")
    torch.manual_seed(0)
    checkpoint = folder / "dino.safetensors"
    save_file(timm.create_model(MODEL, pretrained=False).state_dict(), str(checkpoint))
    yield {"model": MODEL, "checkpoint": str(checkpoint)}
    mp.undo()


def texts(at: AppTest) -> list[str]:
    """Everything the page wrote in words (markdown, captions, infos, image captions,
    widget labels)."""
    found = [e.value for kind in ("markdown", "caption", "info", "warning", "subheader")
             for e in at.get(kind)]
    found += [c for img in at.get("image") for c in img.captions]
    found += [w.label for kind in ("selectbox", "radio", "toggle") for w in at.get(kind)]
    return [str(t) for t in found]


@pytest.mark.parametrize("page", [p.path for p in PAGES], ids=[p.name for p in PAGES])
def test_every_page_says_no_classes_and_names_none(link, page):
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(link)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    words = texts(at)
    assert any(NO_CLASSES in t for t in words), words
    assert not [t for t in words if FORBIDDEN.search(t)], [t for t in words
                                                          if FORBIDDEN.search(t)]


def test_the_reference_image_goes_into_the_link_and_the_maps(link):
    other = demo_dataset().records[7].id
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(link)
    at.run()
    at.switch_page(by_name("overview").path).run()
    assert any("Most similar images" in t for t in texts(at))
    at.selectbox(key="w_reference").set_value(other).run()
    assert at.query_params["reference"] == other
    assert not at.exception and not at.error
