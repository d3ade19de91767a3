"""Images of a set as a model's input batch: decoded in the model's image mode and
preprocessed by its transform; the images that cannot be used listed with a typed
reason (``core.failures``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from core.data.decode import ImageDecodeError
from core.data.records import Dataset
from core.failures import Failure

if TYPE_CHECKING:
    from core.model.loaded import LoadedModel

NOT_AN_IMAGE = "could not be read as an image"  # how a file that can never be used is listed


def load_batch(lm: LoadedModel, ds: Dataset, indices: list[int]
               ) -> tuple[torch.Tensor | None, list[int], dict[int, Failure]]:
    """Decode and preprocess `indices`; returns (batch, kept indices, the others'
    failures by index)."""
    tensors, kept, failures = [], [], {}
    for i in indices:
        try:
            tensors.append(lm.transform(ds.image(i, lm.image_mode)))
            kept.append(i)
        except ImageDecodeError as err:
            failures[i] = Failure("not_an_image", f"{NOT_AN_IMAGE}: {err}")
        except OSError as err:  # permissions, vanished file
            failures[i] = Failure("unreadable", f"could not be opened: {err.strerror or err}")
        except MemoryError:
            failures[i] = Failure("too_large", "needs more memory than this server can give "
                                  "it; resize it first")
    return (torch.stack(tensors) if tensors else None), kept, failures
