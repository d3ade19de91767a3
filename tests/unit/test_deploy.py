"""The Docker image as deployed, checked from its files (CI has no container engine;
deploy/check-image.sh builds and runs it where there is one): it starts the server
itself under an init (no `make` as PID 1) with the very command `make serve` runs,
its health check and port follow PORT, the cache and uploads folders belong to the
app's user, and it installs the app's requirements only."""
from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

from testing.requirements import closure, top_level
from testing.server import SERVE, fake_venv

ROOT = Path(__file__).resolve().parents[2]
TEST_PACKAGES = {"pytest", "pytest-xdist", "playwright", "transformers"}


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def only(name: str) -> str:
    found = [rest for instruction, rest in instructions() if instruction == name]
    assert len(found) == 1, (name, found)
    return found[0]


def image_env() -> dict[str, str]:
    """ENV as the image sets it (ARG defaults substituted)."""
    args = dict(rest.split("=", 1) for instruction, rest in instructions() if instruction == "ARG")
    env = {}
    for instruction, rest in instructions():
        if instruction == "ENV":
            for word in shlex.split(rest):
                name, value = word.split("=", 1)
                env[name] = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)
    return env


def make(*args: str) -> str:
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True, env={"PATH": "/usr/bin:/bin"}).stdout


def test_the_scripts_parse():
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "check-image.sh")], check=True)
    subprocess.run(["sh", "-n", str(SERVE)], check=True)


def test_the_image_starts_the_server_itself_under_an_init():
    entrypoint, command = json.loads(only("ENTRYPOINT")), json.loads(only("CMD"))
    assert entrypoint == ["/usr/bin/tini", "--"]  # PID 1 passes SIGTERM on
    assert command == ["deploy/serve.sh"]  # which execs streamlit: no make, no shell left
    assert any("tini" in shlex.split(rest) for instruction, rest in instructions()
               if instruction == "RUN" and "apt-get install" in rest)
    assert re.search(r'^exec "\$VENV/bin/python" ', SERVE.read_text(), re.M)


def test_the_image_runs_the_very_command_make_serve_runs(tmp_path):
    venv = fake_venv(tmp_path / "venv")
    env = {**image_env(), "PATH": "/usr/bin:/bin", "VENV": str(venv), "PORT": "8600"}
    image = subprocess.run(json.loads(only("CMD")), cwd=ROOT, env=env, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    served = make("serve", f"VENV={venv}", "HOST=0.0.0.0", "PORT=8600").splitlines()
    assert image[-1] == served[-1]
    assert "run app.py --server.port 8600 --server.address 0.0.0.0" in image[-1]
    assert image[-1].startswith("MALLOC_MMAP_THRESHOLD_=1048576 deploy/streamlit_run.py ")


def test_the_health_check_and_the_port_follow_port():
    assert "PORT=8501" in shlex.split(only("ARG"))
    assert image_env()["PORT"] == "8501"
    assert only("EXPOSE") == "${PORT}"
    health = only("HEALTHCHECK")
    check = health.split(" CMD ", 1)[1]
    assert not check.startswith("["), "an exec-form check cannot read $PORT"
    assert "localhost:${PORT:-8501}/_stcore/health" in check
    assert "8501/" not in check.replace("${PORT:-8501}", "")


def test_cache_and_uploads_are_made_in_the_image_for_the_app_user():
    env = image_env()
    assert env["VIT_EXPLORER_CACHE"] == "/app/cache"
    assert env["VIT_EXPLORER_UPLOADS"] == "/app/uploads"
    order = [instruction for instruction, _ in instructions()]
    made = [rest for instruction, rest in instructions()[:order.index("USER")]
            if instruction == "RUN" and "mkdir" in rest]
    assert made, "no folder is made before the USER line"
    steps = [shlex.split(step) for step in made[0].split("&&")]
    mkdir = next(words for words in steps if words[0] == "mkdir")
    chown = next(words for words in steps if words[0] == "chown")
    assert {"/app/cache", "/app/uploads"} <= set(mkdir)
    assert {"/app/cache", "/app/uploads"} <= set(chown) and chown[1].startswith("explorer")
    assert only("USER") == "explorer"


def test_the_image_installs_the_app_requirements_only(tmp_path):
    runs = " ".join(rest for instruction, rest in instructions() if instruction == "RUN")
    assert "make setup" in runs
    assert "requirements-test" not in runs and "pip install" not in runs
    fresh = f"VENV={tmp_path / 'none'}"
    assert "-r requirements.txt" in make("-n", "setup", fresh)
    assert "requirements-test.txt" not in make("-n", "setup", fresh)
    assert "-r requirements-test.txt" in make("-n", "test", fresh)


def test_editing_either_requirements_file_reinstalls(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    for stamp in (".installed", ".installed-test"):
        (venv / stamp).touch()  # newer than both files
    assert "pip install" not in make("-n", "test", f"VENV={venv}")
    edited_test = make("-n", "-W", "requirements-test.txt", "test", f"VENV={venv}")
    assert "-r requirements-test.txt" in edited_test and "-r requirements.txt" not in edited_test
    edited_app = make("-n", "-W", "requirements.txt", "test", f"VENV={venv}")
    assert "-r requirements.txt" in edited_app and "-r requirements-test.txt" in edited_app
    assert "pip install" not in make("-n", "-W", "requirements-test.txt", "setup", f"VENV={venv}")


def runtime_imports() -> dict[str, Path]:
    """Each top-level module the app's code imports (app.py, app_pages, ui, core,
    deploy), with one file importing it."""
    found = {}
    files = [ROOT / "app.py", *[p for folder in ("app_pages", "ui", "core", "deploy")
                                for p in sorted((ROOT / folder).rglob("*.py"))]]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def test_the_split_holds_the_tests_tools_and_the_app_needs_none_of_them():
    app = closure(top_level(ROOT / "requirements.txt"))
    tests = top_level(ROOT / "requirements-test.txt")
    assert tests == TEST_PACKAGES and not app & TEST_PACKAGES
    assert "-r requirements.txt" in (ROOT / "requirements-test.txt").read_text()
    providers = metadata.packages_distributions()
    local = {"core", "ui", "app_pages"}  # never testing/ or bench/
    for module, path in runtime_imports().items():
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        assert dists & app, f"{path.relative_to(ROOT)} imports {module}, not in requirements.txt"
