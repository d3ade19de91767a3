"""Parameters given or defaulted, in one place: every analysis, dataset step and
explanation method takes a frozen parameter dataclass, or None for its defaults."""
from __future__ import annotations

from typing import TypeVar

P = TypeVar("P")


def parameters(expected: type[P], given: P | None, owner: str) -> P:
    """`given`, or `expected`'s defaults; refuses parameters of another kind, naming
    `owner` (an analysis, a step or a method)."""
    if given is None:
        return expected()
    if not isinstance(given, expected):
        raise TypeError(f"{owner} takes {expected.__name__}, not {type(given).__name__}")
    return given
