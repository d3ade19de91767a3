"""The README's Python example runs as written, and the shapes its comments claim
are the shapes it gets."""
from __future__ import annotations

import ast
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_example() -> str:
    """The first python code block after the "From Python" heading."""
    text = README.read_text()
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def with_shape_checks(code: str) -> str:
    """Each line ``EXPR.shape  # (a, b, ...)...`` becomes an assertion of that shape."""
    lines = []
    for line in code.splitlines():
        found = re.match(r"^(\S.*\.shape)\s+# (\([\d, ]+\))", line)
        lines.append(f"assert tuple({found.group(1)}) == {found.group(2)}, {found.group(1)!r}"
                     if found else line)
    return "\n".join(lines)


def test_the_readme_example_runs_and_its_shapes_hold(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIT_EXPLORER_DEVICE", "cpu")
    code = with_shape_checks(python_example())
    checks = code.count("assert tuple(")
    assert checks >= 5  # the example states its shapes, and they are checked
    ast.parse(code)
    exec(compile(code, str(README), "exec"), {})
