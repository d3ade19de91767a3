"""The distributions a requirements file brings into this environment: its own lines
and, through each installed distribution's metadata, everything they require."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def top_level(path: Path) -> set[str]:
    """The distributions a requirements file names itself (`-r` and options left out)."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def closure(names: set[str]) -> set[str]:
    """`names` and every distribution they require here, with the extras each asks for
    (``cuda-toolkit[cublas,...]``; markers evaluated)."""
    seen, todo = set(), [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                required = canonicalize_name(req.name)
                todo += [(required, "")] + [(required, e) for e in req.extras]
    return {name for name, _ in seen}
