"""Which folders user-given paths may point into.

When ``VIT_EXPLORER_DATA_ROOTS`` is set (folders separated by ``:``, as in the
Docker image's ``/data``), image folders and checkpoint files must resolve
(symbolic links and ``..`` followed) to a place inside one of them, and so must
every file and subfolder read from an image folder (``core.data.walk``);
otherwise any path the user can read is allowed, as for a local tool.
"""
from __future__ import annotations

import os
from pathlib import Path


DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"  # the built-in model and images
BUILTIN_DIRS = {"demo": DEMO_DIR,  # built-in models and image sets, by spec name
                "demo-watermark": DEMO_DIR / "watermark"}  # a model with a known shortcut


class PathNotAllowed(ValueError):
    """A path outside the allowed folders."""


def data_roots() -> list[Path]:
    """The folders of ``VIT_EXPLORER_DATA_ROOTS``, resolved (empty: no limit)."""
    return [Path(r).resolve() for r in os.environ.get("VIT_EXPLORER_DATA_ROOTS", "").split(
        os.pathsep) if r]


def inside(path: Path, roots: list[Path]) -> bool:
    """Whether `path`, links and ``..`` resolved, lies in one of `roots` (or no roots)."""
    resolved = path.resolve()
    return not roots or any(resolved.is_relative_to(root.resolve()) for root in roots)


def allowed_path(path: str | Path) -> Path:
    """`path` resolved, or PathNotAllowed when it leaves the allowed folders."""
    resolved = Path(path).expanduser().resolve()
    roots = data_roots()
    if not inside(resolved, roots):
        raise PathNotAllowed(f"{path} is outside the folders this server may read "
                             f"({', '.join(map(str, roots))}); put the file there or ask "
                             "the administrator to change VIT_EXPLORER_DATA_ROOTS.")
    return resolved
