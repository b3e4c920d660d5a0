"""The messages the module emits: one prediction per frame, one error per refused frame.

Schemas are versioned (``PREDICTION_SCHEMA``, ``ERROR_SCHEMA``) and documented in
docs/message-schemas.md. The ``inferences`` list follows the LVA/AVA inference schema so
existing video-analytics consumers can read it unchanged.

Bodies are encoded by orjson (a C encoder: 0.5 us for a prediction where the standard
library's took 8 us, docs/benchmarks.md), and what is the same for every frame of a model
(its ``model`` object) is encoded once and spliced in.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from classifier.bounded_text import reason_text
from classifier.errors import FrameError
from classifier.frames import FrameMeta, FrameRequest
from edge_module.hub import OutboundMessage

PREDICTION_SCHEMA = "edge-classifier/prediction/1"
# Label sets this small are ranked by sorting whole rows (``top_labels_batch``).
FEW_LABELS = 16
# Score matrices this small (a lone frame's) are ranked in Python (``top_labels_batch``).
FEW_SCORES = 64
ERROR_SCHEMA = "edge-classifier/error/1"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    sha256: str
    provider: str  # the execution provider that really runs the model
    providers_requested: tuple[str, ...] = ()  # the chain asked for, best first

    def to_dict(self) -> dict[str, Any]:
        """The model as the status method and the reported properties show it."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "provider": self.provider,
            "providers_requested": list(self.providers_requested),
        }

    @property
    def message_dict(self) -> dict[str, str]:
        """The model as every prediction message names it."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "provider": self.provider,
        }

    @property
    def message_json(self) -> orjson.Fragment:
        """``message_dict`` encoded once per model, spliced into every prediction's body."""
        return _model_json(self)


@dataclass(frozen=True)
class Prediction:
    meta: FrameMeta
    labels: tuple[tuple[str, float], ...]  # top-k above the threshold, best first
    model: ModelInfo
    timings_ms: dict[str, float]
    width: int
    height: int
    # The frame as it arrived, for the capture stage after the outcome; never sent.
    request: FrameRequest | None = field(default=None, repr=False, compare=False)

    @property
    def top(self) -> tuple[str, float] | None:
        return self.labels[0] if self.labels else None

    def to_dict(self) -> dict[str, Any]:
        return self._body(self.model.message_dict)

    def _body(self, model: object) -> dict[str, Any]:
        name = self.model.name
        return {
            "schema": PREDICTION_SCHEMA,
            "frame": _frame_dict(self.meta) | {"width": self.width, "height": self.height},
            "model": model,
            "inferences": [
                {
                    "type": "classification",
                    "subtype": name,
                    "classification": {"tag": {"value": label, "confidence": _rounded(p, 1e6)}},
                }
                for label, p in self.labels
            ],
            "timings_ms": {k: _rounded(v, 1e3) for k, v in self.timings_ms.items()},
            "emitted_at": utc_now(),
        }

    def to_message(self) -> OutboundMessage:
        properties = {"schema": PREDICTION_SCHEMA, "model": self.model.name}
        if self.top is not None:
            # Routing conditions in IoT Hub can filter on these without parsing the body.
            properties["label"] = self.top[0]
            properties["confidence"] = f"{self.top[1]:.4f}"
        if self.meta.source_id:
            properties["source_id"] = self.meta.source_id
        return OutboundMessage(
            body=orjson.dumps(self._body(self.model.message_json)),
            correlation_id=self.meta.frame_id,
            properties=_with_passthrough(self.meta, properties),
        )


@dataclass(frozen=True)
class FrameFailure:
    meta: FrameMeta
    error: FrameError

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ERROR_SCHEMA,
            "frame": _frame_dict(self.meta),
            "error": {"code": str(self.error.code), "reason": reason_text(self.error.reason)},
            "emitted_at": utc_now(),
        }

    def to_message(self) -> OutboundMessage:
        return OutboundMessage(
            body=orjson.dumps(self.to_dict()),
            correlation_id=self.meta.frame_id,
            properties=_with_passthrough(
                self.meta, {"schema": ERROR_SCHEMA, "code": str(self.error.code)}
            ),
        )


@lru_cache(maxsize=16)
def _model_json(info: ModelInfo) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(info.message_dict))


def top_labels(
    scores: npt.NDArray[np.float32], labels: Sequence[str], top_k: int, threshold: float
) -> tuple[tuple[str, float], ...]:
    return top_labels_batch(scores[None, :], labels, top_k, threshold)[0]


def top_labels_batch(
    scores: npt.NDArray[np.float32], labels: Sequence[str], top_k: int, threshold: float
) -> list[tuple[tuple[str, float], ...]]:
    """Top-k labels above the threshold for each row of a (batch, classes) score matrix.

    One vectorised pass for the whole batch. With many labels, argpartition finds each row's
    k best in O(n) and only those k are sorted; with a few (``FEW_LABELS``), one sort of each
    whole row costs less than the four calls that takes (0.94 -> 0.51 us a frame for three
    labels, batches of 64). A lone frame's few scores are ranked in Python: at 20 frames/s
    each call finds numpy's code out of the caches, and its five calls took 0.17 ms where
    sorting in Python took 0.05 (a tenth of the goal for a lone frame's latency over its
    floor, docs/benchmarks.md section 10c).
    """
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"scores of shape {scores.shape} do not fit {len(labels)} labels")
    k = min(top_k, len(labels))
    if scores.size <= FEW_SCORES:
        return [_ranked(row, labels, k, threshold) for row in scores.tolist()]
    if len(labels) <= FEW_LABELS:
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        picked = np.take_along_axis(scores, best, axis=1)
    else:
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(scores, best, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        picked = np.take_along_axis(picked, order, axis=1)
    return [
        tuple([(labels[i], p) for i, p in zip(row, values, strict=True) if p >= threshold])
        for row, values in zip(best.tolist(), picked.tolist(), strict=True)
    ]


def _ranked(
    row: list[float], labels: Sequence[str], k: int, threshold: float
) -> tuple[tuple[str, float], ...]:
    best = sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]  # stable, as argsort
    return tuple([(labels[i], row[i]) for i in best if row[i] >= threshold])


def _frame_dict(meta: FrameMeta) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": meta.frame_id,
        "source": meta.source_id,
        "capture_time": meta.capture_time,
    }
    if meta.name is not None:
        out["name"] = meta.name
    if meta.passthrough:
        out["properties"] = dict(meta.passthrough)
    return out


def _with_passthrough(meta: FrameMeta, own: dict[str, str]) -> dict[str, str]:
    # The module's own properties win: an upstream 'label' must not pose as the prediction.
    return dict(meta.passthrough) | own


def _rounded(value: float, scale: float) -> float:
    """``round(value, digits)`` for ``scale`` = 10 ** digits, five times faster (``round``
    with digits formats the number as text: 2.4 of a prediction's 6.9 us went to rounding
    its six timings, docs/benchmarks.md section 10c); NaN and infinities stay as they are."""
    scaled = value * scale
    if -1e15 < scaled < 1e15:  # false for NaN and the infinities
        return round(scaled) / scale
    return value


_now_text: tuple[int, str] = (0, "")


def utc_now() -> str:
    """ISO 8601 UTC to the millisecond; formatted once per millisecond however many
    outcomes are stamped in it (a batch's are)."""
    global _now_text
    ms = time.time_ns() // 1_000_000
    last_ms, text = _now_text
    if ms != last_ms:
        moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        _now_text = (ms, text)
    return text
