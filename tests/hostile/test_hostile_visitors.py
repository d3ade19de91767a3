"""Hostile visitors: user text shown as plain text, no tracebacks on the page, and a
server that listens on this machine only unless told otherwise."""
from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from streamlit.testing.v1 import AppTest

from testing.images import demo_flat_folder
from testing.server import fake_venv

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
BEACON = "![b](http://127.0.0.1:8699/beacon.png)"


def markdown_bodies(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [m.value for m in at.sidebar.markdown] + [
        e.value for e in list(at.error) + list(at.warning) + list(at.sidebar.error)]


def test_a_label_row_that_is_markdown_is_shown_as_plain_text(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    folder = demo_flat_folder(tmp_path, count=1, broken=False)
    (folder / "labels.csv").write_text(f"{BEACON},Bag\n")
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"images": str(folder)})
    at.run()
    assert not at.exception, at.exception
    assert not [body for body in markdown_bodies(at) if "](http" in body]
    assert any(BEACON in t.value for t in at.sidebar.text)


def test_an_error_naming_user_text_is_not_markdown(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"images": str(tmp_path / BEACON.replace("/", "_"))})
    at.run()
    assert not at.exception
    assert at.sidebar.error and not [b for b in markdown_bodies(at) if "![b](" in b]


def test_an_unexpected_loading_error_shows_a_short_message_not_a_traceback(
        tmp_path, monkeypatch, caplog):
    import ui.resources

    def broken(spec, checkpoint=None):
        raise RuntimeError(f"internal detail {tmp_path}/server/path")

    monkeypatch.setattr(ui.resources, "load_model", broken)
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params.update({"model": "vit_tiny_patch16_224",
                            "checkpoint": str(tmp_path / "unique.pth")})
    at.run()
    assert not at.exception, at.exception
    shown = " ".join(e.value for e in at.sidebar.error)
    assert "could not be loaded" in shown and "server log" in shown
    assert str(tmp_path) not in shown
    assert "internal detail" in caplog.text  # the details stay in the server's log


def test_visitors_never_see_error_details():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"


def serve_command(venv, *args: str) -> str:
    """What `make serve` runs streamlit with (deploy/serve.sh on a stand-in python)."""
    return subprocess.run(["make", "serve", f"VENV={venv}", *args], cwd=ROOT,
                          capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"}).stdout.splitlines()[-1]


def test_make_serve_listens_on_this_machine_only_unless_told(tmp_path):
    venv = fake_venv(tmp_path)
    assert "--server.address 127.0.0.1" in serve_command(venv)
    assert "--server.address 0.0.0.0" in serve_command(venv, "HOST=0.0.0.0")


def test_the_docker_image_opens_the_port_with_roots_and_a_model_budget():
    docker = (ROOT / "Dockerfile").read_text()
    env = " ".join(line for line in docker.splitlines() if line.startswith("ENV"))
    for setting in ("HOST=0.0.0.0", "VIT_EXPLORER_DATA_ROOTS=/data", "VIT_EXPLORER_MAX_PARAMS="):
        assert setting in env, setting
