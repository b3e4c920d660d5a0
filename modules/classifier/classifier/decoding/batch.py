"""A decoded batch: its frames, the model input they make, and when its buffer may be reused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from classifier.decoding.prepared import PreparedFrame
from classifier.preprocess import FloatArray


@dataclass
class DecodedBatch:
    items: list[PreparedFrame]
    # The frames' tensors as one contiguous block, row i for items[i], when the decoder wrote
    # them into a shared buffer; None when each frame has its own array.
    block: FloatArray | None = None
    _release: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def good(self) -> list[PreparedFrame]:
        return [p for p in self.items if p.tensor is not None]

    def model_input(self, good: list[PreparedFrame]) -> FloatArray:
        """The batch tensor for ``good``: the shared block itself (no copy) when every frame
        decoded, else the good rows stacked."""
        if self.block is not None and len(good) == len(self.items):
            return self.block[: len(good)]
        return np.stack([p.tensor for p in good if p.tensor is not None])

    def release(self) -> None:
        """The tensors are no longer read: their buffer may take the next batch."""
        release, self._release = self._release, None
        for p in self.items:
            p.tensor = None
        if release is not None:
            release()
