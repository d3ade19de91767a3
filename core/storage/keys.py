"""Every cache key, built in one place.

A key names what was computed (an analysis or a dataset step and its schema
version), on which model (name + weights hash), on which content (one image's
content hash, or the hash of a whole image set), with which parameters (the
fields of the frozen parameter dataclass), for which class (the resolved
target of the image; ``-`` for class-agnostic results) and from what it reads (a hash of
the signatures of the analyses it is built from, ``core.engine.signature``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from core.model.targets import Reference, Target

if TYPE_CHECKING:
    from core.data.records import Dataset

SCHEMA_VERSION = 3  # the layout of every key and entry; bump to drop all old entries
PREDICTION = "pred"  # the target part of a key when the predicted class is explained


def params_json(params: Any) -> str:
    """Canonical JSON of a parameter dataclass (or None: no parameters)."""
    fields = {} if params is None else dataclasses.asdict(params)
    return json.dumps(fields, sort_keys=True)


def target_part(target: Target, class_specific: bool) -> str:
    """`target` as a key part: ``-`` when the result does not depend on the class; a
    reference embedding by its source (its image's content)."""
    if not class_specific:
        return "-"
    if isinstance(target, Reference):
        return f"ref:{target.source}"
    return PREDICTION if target is None else str(int(target))


def cache_key(model_identity: str, content_hash: str, name: str, version: int,
              params: Any = None, target: str = "-", reads: str = "") -> str:
    """The one key builder: schema, analysis or step name and version, model, content
    (an image or an image set), parameter fields, target part and what it reads."""
    return "|".join([f"v{SCHEMA_VERSION}", f"{name}@{version}", model_identity, content_hash,
                     params_json(params), target, reads])


def digest(text: str) -> str:
    """A short hash of `text` (a key part that would be long: what an analysis reads)."""
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def image_set_hash(ds: "Dataset", indices: list[int]) -> str:
    """A hash of the content of images `indices` of `ds`, in order. An unreadable
    file counts by its id (the engine skips it and lists it)."""
    parts = []
    for i in indices:
        try:
            parts.append(ds.content_hash(i))
        except OSError:
            parts.append(f"unreadable:{ds.records[i].id}")
    return digest("\n".join(parts))
