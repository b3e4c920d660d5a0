"""The model that serves, the one before it, and the swap between them.

The pipeline reads ``ModelStore.current`` once per batch and carries that ``ServingModel``
with the batch through decode, preprocessing and inference, so a swap replaces one reference
between batches: a batch in flight finishes on the model it started with (it holds a
reference), the next batch starts on the new one, and no frame waits for the swap.

After a swap the new model is on probation: the previous one stays loaded so that a failure
on live frames can fall back to it at once (the pipeline re-scores that batch on it). Once the
new model has scored ``probation_frames`` frames, or ``probation_s`` has passed, it is
promoted and the previous session is released (its file stays in the cache for rollback).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from classifier.engine import InferenceEngine
from classifier.predictions import ModelInfo, utc_now
from classifier.preprocess import Preprocessor

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ServingModel:
    """Everything a batch needs from one model, built once when the model is loaded."""

    engine: InferenceEngine
    preprocessor: Preprocessor
    info: ModelInfo
    source: str  # builtin, cache or download: where the file came from
    activated_at: str = field(default_factory=utc_now)

    @classmethod
    def from_engine(cls, engine: InferenceEngine, source: str = "builtin") -> ServingModel:
        spec = engine.model.spec
        info = ModelInfo(
            spec.name, spec.version, engine.model.sha256, engine.provider, engine.requested
        )
        return cls(engine, Preprocessor(spec.preprocessing), info, source)

    def describe(self) -> dict[str, object]:
        return self.info.to_dict() | {"source": self.source, "activated_at": self.activated_at}


Listener = Callable[[ServingModel, ServingModel | None], None]


class ModelStore:
    """Not thread-safe: used from the module's event loop only."""

    def __init__(
        self,
        current: ServingModel,
        probation_frames: int = 100,
        probation_s: float = 300.0,
    ) -> None:
        self._current = current
        self._previous: ServingModel | None = None
        self._on_probation = False
        self._served_on_probation = 0
        self._swapped_at = 0.0
        self.probation_frames = probation_frames
        self.probation_s = probation_s
        # Called with (promoted model, released previous) and (failed model, restored one).
        self.on_promoted: Listener | None = None
        self.on_fallback: Callable[[ServingModel, ServingModel, str], None] | None = None

    @classmethod
    def serving(cls, engine: InferenceEngine, source: str = "builtin") -> ModelStore:
        return cls(ServingModel.from_engine(engine, source))

    @property
    def current(self) -> ServingModel:
        return self._current

    @property
    def previous(self) -> ServingModel | None:
        return self._previous

    @property
    def on_probation(self) -> bool:
        return self._on_probation

    def swap(self, new: ServingModel) -> ServingModel:
        """Makes ``new`` serve from the next batch on; returns the model it replaces."""
        old = self._current
        self._previous = old
        self._current = new
        self._on_probation = True
        self._served_on_probation = 0
        self._swapped_at = time.monotonic()
        log.info(
            "model swap: %s %s -> %s %s",
            old.info.name,
            old.info.version,
            new.info.name,
            new.info.version,
        )
        return old

    def served(self, model: ServingModel, frames: int) -> None:
        """The pipeline scored ``frames`` frames on ``model`` without an error."""
        if not self._on_probation or model is not self._current:
            return
        self._served_on_probation += frames
        long_enough = time.monotonic() - self._swapped_at >= self.probation_s
        if self._served_on_probation >= self.probation_frames or long_enough:
            self.promote()

    def promote(self) -> None:
        """Ends probation: the previous session is released; rollback reloads it from disk."""
        if not self._on_probation:
            return
        released = self._previous
        self._on_probation = False
        self._previous = None
        log.info("model %s %s promoted", self._current.info.name, self._current.info.version)
        if self.on_promoted is not None:
            self.on_promoted(self._current, released)

    def inference_failed(self, model: ServingModel, reason: str) -> ServingModel | None:
        """A batch failed on ``model``: returns the model to re-score it on, or None (the
        frames fail). On probation the previous model serves again and is returned; a batch
        prepared for a model that no longer serves (the one decoded just before a fallback)
        goes to the model serving now."""
        if model is not self._current:
            return self._current
        if not self._on_probation or self._previous is None:
            return None
        restored = self._previous
        self._current = restored
        self._previous = None
        self._on_probation = False
        log.error(
            "model %s %s failed on live frames (%s): back to %s %s",
            model.info.name,
            model.info.version,
            reason,
            restored.info.name,
            restored.info.version,
        )
        if self.on_fallback is not None:
            self.on_fallback(model, restored, reason)
        return restored

    def restore(self, model: ServingModel) -> ServingModel:
        """Rollback on request: ``model`` (the previous one, reloaded if it was released)
        serves again without probation; returns the model it replaces."""
        old = self._current
        self._current = model
        self._previous = None
        self._on_probation = False
        return old
