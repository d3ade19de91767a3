"""The one target convention: what an image is explained or measured on.

Analyses and explanation methods receive one target per image. For a classifier it is
an int class index, or None for the image's own predicted class. For a model without
class scores (SPEC "Models without class scores") it is a :class:`Reference`
embedding, or None for the image's own unpruned, unperturbed embedding. The engine
turns a user's choice (true label, prediction, one class, one reference image) into
these per-image targets; :meth:`Explained.of` resolves them from the outputs of the
unperturbed forward pass that every analysis runs anyway.

Every quantity that a class probability ``P[y]`` or logit ``Y_c`` feeds is read
through :class:`Explained`: for a model without classes both become the score
``s(x) = <e(x), r> / <r, r>`` (1 for the reference itself).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Reference:
    """A reference embedding ``r`` (width,) and what it is (the reference image's
    content hash: the part of a cache key that names it)."""

    embedding: np.ndarray
    source: str

    def __post_init__(self) -> None:
        if not np.any(self.embedding):
            raise ValueError(f"The reference embedding of {self.source} is zero; "
                             "pick another reference image.")


Target = int | Reference | None
Targets = Sequence[Target]


def classes_of(logits: torch.Tensor, targets: Targets | None) -> torch.Tensor:
    """The class of each image (batch,): its target, else its prediction (`targets`
    None: every image's prediction)."""
    predicted = logits.detach().argmax(-1).tolist()
    targets = [None] * len(predicted) if targets is None else list(targets)
    if len(targets) != len(predicted):
        raise ValueError(f"{len(targets)} targets for {len(predicted)} images")
    return torch.tensor([p if t is None else int(t) for t, p in zip(targets, predicted)],
                        device=logits.device)


@dataclass(frozen=True)
class Explained:
    """What each image of a batch is measured on: ``classes`` (batch,) of a classifier,
    or ``references`` (batch x width) of a model without class scores; one is None."""

    classes: torch.Tensor | None = None
    references: torch.Tensor | None = None

    @staticmethod
    def of(outputs: torch.Tensor, targets: Targets | None, has_classes: bool) -> "Explained":
        """The targets resolved against the unperturbed `outputs` (batch x output: class
        logits, or embeddings): predictions for None classes, the image's own embedding
        for None references."""
        if has_classes:
            return Explained(classes=classes_of(outputs, targets))
        targets = [None] * len(outputs) if targets is None else list(targets)
        if len(targets) != len(outputs):
            raise ValueError(f"{len(targets)} targets for {len(outputs)} images")
        if any(isinstance(t, (int, np.integer)) for t in targets):
            raise ValueError("This model has no classes: give a reference image, not a "
                             "class index.")
        rows = [e.detach() if t is None else
                torch.as_tensor(t.embedding, dtype=e.dtype, device=e.device)
                for e, t in zip(outputs, targets)]
        return Explained(references=torch.stack(rows))

    def __len__(self) -> int:
        chosen = self.classes if self.classes is not None else self.references
        return len(chosen)

    def select(self, index: torch.Tensor | slice) -> "Explained":
        """The targets of rows `index` (for variants of the images)."""
        return Explained(None if self.classes is None else self.classes[index],
                         None if self.references is None else self.references[index])

    def repeat(self, k: int) -> "Explained":
        """Each target `k` times in a row (image-major variants)."""
        return self.select(torch.arange(len(self)).repeat_interleave(k))

    def _per_image(self, values: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """`values` (batch, ...) viewed to broadcast over the middle axes of `outputs`
        (batch, ..., output)."""
        middle = [1] * (outputs.dim() - 2)
        return values.to(outputs.device).view(len(values), *middle, *values.shape[1:])

    def _class_entry(self, values: torch.Tensor) -> torch.Tensor:
        """(batch, ...) each image's class entry of `values` (batch, ..., class)."""
        index = self._per_image(self.classes, values)[..., None]
        return values.gather(-1, index.expand(*values.shape[:-1], 1))[..., 0]

    def score(self, outputs: torch.Tensor) -> torch.Tensor:
        """(batch, ...) the softmax probability of the class, or the score ``s``, of
        outputs (batch, ..., output): one image's target serves all its middle axes."""
        if self.classes is not None:
            return self._class_entry(outputs.softmax(-1))
        r = self._per_image(self.references, outputs).to(outputs.dtype)
        return (outputs * r).sum(-1) / (r * r).sum(-1)

    def logit(self, outputs: torch.Tensor) -> torch.Tensor:
        """(batch, ...) the logit ``Y_c`` of the class, or the score ``s``."""
        if self.classes is not None:
            return self._class_entry(outputs)
        return self.score(outputs)

    def loss(self, outputs: torch.Tensor) -> torch.Tensor:
        """(batch, ...) the cross-entropy ``-log P[c]``, or ``-s``."""
        if self.classes is not None:
            return -self._class_entry(outputs.log_softmax(-1))
        return -self.score(outputs)

    def kept(self, outputs: torch.Tensor) -> torch.Tensor:
        """(batch, ...) what the perturbation tests record (SPEC "Faithfulness of
        explanations", "Models without class scores"): 1.0 where the top-1 class is
        still the class explained, else 0.0; or the score ``s``."""
        if self.classes is not None:
            top = outputs.argmax(-1)
            return (top == self._per_image(self.classes, outputs)).to(outputs.dtype)
        return self.score(outputs)

    def resolved(self, targets: Targets | None) -> list[Target]:
        """Per-image targets for the explanation methods: a classifier's classes (its
        None targets become these predictions), else `targets` as given."""
        if self.classes is not None:
            return self.classes.tolist()
        return [None] * len(self) if targets is None else list(targets)

    def stored(self) -> np.ndarray:
        """(batch,) int64 for the cache: the class explained, or -1 (no class)."""
        if self.classes is None:
            return np.full(len(self), -1, dtype=np.int64)
        return self.classes.cpu().numpy().astype(np.int64)
