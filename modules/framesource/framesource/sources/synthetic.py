"""The synthetic camera: frames of the default model's ten classes, with ground truth.

Frame ``i`` depends only on ``(seed, i)``, as in the synthdata splits, so anyone holding the
seed can regenerate a frame and its label; the label also travels as the ``truth`` property.
The class cycles with ``i``, so every class appears equally often.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import synthdata
from framesource.settings import DEFAULT_SEED, SourceSettings
from framesource.sources.frames import EncodedFrame, encode_rgb

# Without a size asked for, the demo camera's.
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 240


@dataclass
class SyntheticFrame:
    seed: int
    index: int
    timestamp_s: float
    pts_ms: int | None = None
    truth: str | None = None
    drift: synthdata.Drift = synthdata.NO_DRIFT

    def __post_init__(self) -> None:
        self.truth = synthdata.LABELS[self.index % synthdata.NUM_CLASSES]

    def encode(self, width: int, height: int, quality: int) -> EncodedFrame:
        class_id = self.index % synthdata.NUM_CLASSES
        rgb = synthdata.render_drifted(
            class_id,
            synthdata.sample_rng(self.seed, self.index),
            width or DEFAULT_WIDTH,
            height or DEFAULT_HEIGHT,
            self.drift,
            synthdata.drift_rng(self.seed, self.index),
        )
        return encode_rgb(rgb, quality)


class SyntheticReader:
    def __init__(self, seed: int, fps: float, drift: synthdata.Drift = synthdata.NO_DRIFT) -> None:
        self._seed = seed
        self._period_s = 1.0 / fps
        self._drift = drift

    @classmethod
    def open(cls, settings: SourceSettings) -> SyntheticReader:
        return cls(settings.seed, settings.fps, settings.drift)

    def describe(self) -> dict[str, Any]:
        drift = self._drift.to_dict() if self._drift.active else None
        return {"codec": "synthetic", "classes": synthdata.NUM_CLASSES, "drift": drift}

    def frames(self) -> Iterator[SyntheticFrame]:
        # Timestamps at the target rate: the pacer sends them in real time, none skipped.
        for index in itertools.count():
            yield SyntheticFrame(self._seed, index, index * self._period_s, drift=self._drift)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class CameraFrame:
    """A synthetic frame as the module sends it, for tools and tests that play the camera."""

    index: int
    jpeg: bytes
    truth: str
    properties: dict[str, str]
    message_id: str


def make_frame(
    source_id: str,
    seed: int,
    index: int,
    width: int,
    height: int,
    quality: int,
    drift: synthdata.Drift = synthdata.NO_DRIFT,
) -> CameraFrame:
    frame = SyntheticFrame(seed, index, 0.0, drift=drift)
    jpeg = frame.encode(width, height, quality).jpeg
    truth = frame.truth or ""
    properties = {
        "source_id": source_id,
        "capture_time": str(int(time.time() * 1000)),
        "truth": truth,
        "seq": str(index),
    }
    return CameraFrame(index, jpeg, truth, properties, f"{source_id}-{index}")


__all__ = ["DEFAULT_SEED", "CameraFrame", "SyntheticReader", "make_frame"]
