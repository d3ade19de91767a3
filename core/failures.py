"""Why an image could not be used, as a kind the engine acts on and a message for the
reader, keyed by image id wherever a list of them travels (never parsed from text)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "not_an_image",  # its content can never be decoded: the engine remembers it by content
    "unreadable",  # it could not be opened (permissions, vanished): it may pass next time
    "too_large",  # it needs more memory than the server gives one image
    "not_computed",  # its analysis failed where it ran (a cluster)
]


@dataclass(frozen=True)
class Failure:
    kind: Kind
    message: str

    def __str__(self) -> str:
        return self.message
