"""Every cache key, built in one place.

A key names what was computed (an analysis or a dataset step and its schema
version), on which model (name + weights hash), on which content (one image's
content hash, or the hash of a whole image set), with which parameters (the
fields of the frozen parameter dataclass) and for which class (the resolved
target of the image; ``-`` for class-agnostic results).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from core.model.targets import Reference, Target

if TYPE_CHECKING:
    from core.data.records import Dataset

SCHEMA_VERSION = 2  # the layout of every key and entry; bump to drop all old entries
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
              params: Any = None, target: str = "-") -> str:
    """The one key builder: schema, analysis or step name and version, model, content
    (an image or an image set), parameter fields and target part."""
    return "|".join([f"v{SCHEMA_VERSION}", f"{name}@{version}", model_identity, content_hash,
                     params_json(params), target])


def image_set_hash(ds: "Dataset", indices: list[int]) -> str:
    """A hash of the content of images `indices` of `ds`, in order. An unreadable
    file counts by its id (the engine skips it and lists it)."""
    digest = hashlib.blake2b(digest_size=12)
    for i in indices:
        try:
            digest.update(ds.content_hash(i).encode())
        except OSError:
            digest.update(f"unreadable:{ds.records[i].id}".encode())
    return digest.hexdigest()
