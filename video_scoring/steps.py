"""The per-frame step, pluggable: what "scoring" a frame means.

A step takes a batch of frames (RGB pixels) and returns one JSON-able result per frame; for
``--annotate`` it also draws its result on the frame (or, for a step that produces images,
would return its image). Classification is the step built now, on the classifier module's own
engine and preprocessing, so a frame scored here gets the prediction the module would give
it. An image-to-image step (the seed's style transfer) is a second ``FrameStep`` with a
result holding its image; ``build_step`` is the one place that would name it.

A ``StepSpec`` travels to the workers (Ray pickles it): the model's bytes and its sidecar
spec, so workers need no shared storage for the model; each worker builds the step once and
keeps its ONNX Runtime session for every shard it scores.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from classifier.engine import EngineOptions, InferenceEngine
from classifier.frames import DecodedImage
from classifier.model_spec import sidecar_candidates
from classifier.predictions import top_labels
from classifier.preprocess import Preprocessor

RgbArray = npt.NDArray[np.uint8]
# Confidences are written rounded: what two runs must agree on, whatever float noise.
CONFIDENCE_DIGITS = 6


class FrameStep(Protocol):
    kind: str

    def describe(self) -> dict[str, Any]: ...

    def process(self, frames: list[RgbArray]) -> list[dict[str, Any]]: ...

    def annotate(self, image: RgbArray, result: dict[str, Any]) -> RgbArray: ...


@dataclass(frozen=True)
class StepSpec:
    kind: str
    model_name: str
    model_bytes: bytes
    sidecar_bytes: bytes | None
    top_k: int = 3
    provider: str = "auto"
    threads: int = 0  # ONNX Runtime intra-op threads; 0: every core

    @classmethod
    def classification(
        cls, model: Path, top_k: int = 3, provider: str = "auto", threads: int = 0
    ) -> StepSpec:
        sidecar = next((p for p in sidecar_candidates(model) if p.is_file()), None)
        return cls(
            "classification",
            model.name,
            model.read_bytes(),
            sidecar.read_bytes() if sidecar else None,
            top_k,
            provider,
            threads,
        )


def build_step(spec: StepSpec) -> FrameStep:
    return _step_class(spec.kind).from_spec(spec)


def annotator(kind: str) -> Callable[[RgbArray, dict[str, Any]], RgbArray]:
    """How a step of ``kind`` draws its result, without loading a model."""
    return _step_class(kind).annotate


def _step_class(kind: str) -> type[ClassificationStep]:
    # The registry of steps: one kind now; an image-to-image step joins it here.
    if kind == "classification":
        return ClassificationStep
    raise ValueError(f"unknown step kind {kind!r}")


class ClassificationStep:
    kind = "classification"

    def __init__(self, engine: InferenceEngine, top_k: int) -> None:
        self.engine = engine
        self.preprocessor = Preprocessor(engine.model.spec.preprocessing)
        self.top_k = top_k

    @classmethod
    def from_spec(cls, spec: StepSpec) -> ClassificationStep:
        # ONNX Runtime loads from a path, and a sidecar spec is found beside the model.
        with tempfile.TemporaryDirectory(prefix="video-scoring-") as folder:
            path = Path(folder) / spec.model_name
            path.write_bytes(spec.model_bytes)
            if spec.sidecar_bytes is not None:
                sidecar_candidates(path)[0].write_bytes(spec.sidecar_bytes)
            options = EngineOptions(provider=spec.provider, intra_op_threads=spec.threads)
            engine = InferenceEngine.from_path(path, options)
        return cls(engine, spec.top_k)

    def describe(self) -> dict[str, Any]:
        model = self.engine.model
        return {
            "kind": self.kind,
            "name": model.spec.name,
            "version": model.spec.version,
            "sha256": model.sha256,
            "provider": self.engine.provider,
        }

    def process(self, frames: list[RgbArray]) -> list[dict[str, Any]]:
        if not frames:
            return []
        tensors = [
            self.preprocessor(DecodedImage(f, "RGB", f.shape[1], f.shape[0])) for f in frames
        ]
        scores = self.engine.run(np.stack(tensors))
        labels = self.engine.model.spec.labels
        results = []
        for row in scores:
            top = top_labels(row, labels, self.top_k, 0.0)
            ranked = [[label, round(score, CONFIDENCE_DIGITS)] for label, score in top]
            results.append({"label": ranked[0][0], "confidence": ranked[0][1], "top": ranked})
        return results

    @staticmethod
    def annotate(image: RgbArray, result: dict[str, Any]) -> RgbArray:
        """The label and confidence, top left, sized to the frame."""
        text = f"{result['label']} {result['confidence']:.2f}"
        out = np.ascontiguousarray(image.copy())
        scale = max(0.4, image.shape[0] / 480)
        thickness = max(1, round(scale * 2))
        origin = (8, 8 + round(22 * scale))
        # A dark outline under light text reads on any background.
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2)
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 0), thickness)
        return np.asarray(out, dtype=np.uint8)
