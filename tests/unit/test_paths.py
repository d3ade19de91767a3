"""User-given paths stay inside VIT_EXPLORER_DATA_ROOTS when it is set."""
from __future__ import annotations

import os

import pytest

from core.data.datasets import load_dataset
from core.model.loading import load_model
from core.data.paths import PathNotAllowed, allowed_path


def test_without_roots_any_path_is_allowed(monkeypatch, tmp_path):
    monkeypatch.delenv("VIT_EXPLORER_DATA_ROOTS", raising=False)
    assert allowed_path(tmp_path / "x") == (tmp_path / "x").resolve()


def test_paths_outside_the_roots_are_refused(monkeypatch, tmp_path):
    data = tmp_path / "data"
    (data / "imgs").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    os.symlink(secret, data / "link")
    monkeypatch.setenv("VIT_EXPLORER_DATA_ROOTS", str(data))
    assert allowed_path(data / "imgs") == (data / "imgs").resolve()
    for escape in (secret, data / ".." / "secret", data / "link", "/etc"):
        with pytest.raises(PathNotAllowed, match="outside the folders"):
            allowed_path(escape)
    with pytest.raises(PathNotAllowed):
        load_dataset(str(data / "link"), ["a"])
    with pytest.raises(PathNotAllowed):
        load_model("deit_tiny_patch16_224", secret / "w.safetensors")
    assert len(load_dataset("demo", ["a"] * 10)) == 1000  # the built-in demo is always there
