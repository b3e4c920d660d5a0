"""Turns a verified model file into a ``ServingModel`` that is safe to swap in, or refuses it.

Blocking (ONNX Runtime holds the GIL while it builds a session): call from a worker thread.
Steps, each failing with its own code:
1. ONNX Runtime loads the file on the configured providers (``model_invalid``,
   ``provider_unavailable``);
2. its one image input and its output fit what the pipeline feeds and reads, as the model's own
   spec describes them (``model_incompatible``);
3. a warm-up inference, so the first live frame does not pay for buffer allocation;
4. the self-test (``self_test_failed``): the golden image in the model's spec goes through the
   module's own decode and preprocessing and must come out as the expected label with at
   least the stated confidence. Without a golden image, one inference on a blank frame must
   give finite scores of the right shape (probabilities summing to 1).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.decode import decode_frame
from classifier.decode_limits import FrameLimits
from classifier.engine import EngineOptions, InferenceEngine
from classifier.errors import (
    FrameError,
    ModelIncompatibleError,
    ModelLoadError,
    ModelSpecError,
    ModelUpdateError,
    ProviderError,
    UpdateErrorCode,
)
from classifier.frames import FrameMeta, FrameRequest
from classifier.model_spec import OutputKind
from classifier.model_store import ServingModel


@dataclass(frozen=True)
class SelfTestResult:
    passed: bool
    detail: str
    label: str | None = None
    confidence: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "detail": self.detail,
            "label": self.label,
            "confidence": self.confidence,
        }


def load_candidate(path: Path, options: EngineOptions, source: str) -> ServingModel:
    try:
        engine = InferenceEngine.from_path(path, options)
    except ProviderError as e:
        raise ModelUpdateError(UpdateErrorCode.PROVIDER_UNAVAILABLE, str(e)) from e
    except ModelSpecError as e:
        raise ModelUpdateError(UpdateErrorCode.MODEL_INVALID, f"model spec: {e}") from e
    except ModelIncompatibleError as e:
        raise ModelUpdateError(UpdateErrorCode.MODEL_INCOMPATIBLE, str(e)) from e
    except ModelLoadError as e:
        raise ModelUpdateError(UpdateErrorCode.MODEL_INVALID, str(e)) from e
    model = ServingModel.from_engine(engine, source)
    try:
        engine.warm_up()
    except Exception as e:  # ONNX Runtime raises untyped errors
        raise ModelUpdateError(
            UpdateErrorCode.MODEL_INCOMPATIBLE, f"warm-up inference failed: {e}"
        ) from e
    result = self_test(model)
    if not result.passed:
        raise ModelUpdateError(UpdateErrorCode.SELF_TEST_FAILED, result.detail)
    return model


def self_test(model: ServingModel, limits: FrameLimits | None = None) -> SelfTestResult:
    """Runs the model's self-test (never raises for a failing model: the result says why)."""
    spec = model.engine.model.spec
    golden = spec.self_test
    try:
        if golden is None:
            return _blank_frame_test(model)
        payload = base64.b64decode(golden.image_base64, validate=True)
        label, confidence = classify_image(model, payload, limits)
    except (FrameError, binascii.Error, ValueError) as e:
        return SelfTestResult(False, f"the golden image cannot be scored: {e}")
    except Exception as e:  # ONNX Runtime raises untyped errors
        return SelfTestResult(False, f"inference on the golden image failed: {e}")
    if label != golden.label or confidence < golden.min_confidence:
        return SelfTestResult(
            False,
            f"golden image scored {label} ({confidence:.3f}); expected {golden.label} "
            f"with confidence >= {golden.min_confidence}",
            label,
            confidence,
        )
    return SelfTestResult(
        True, f"golden image scored {label} ({confidence:.3f})", label, confidence
    )


def classify_image(
    model: ServingModel, payload: bytes, limits: FrameLimits | None = None
) -> tuple[str, float]:
    """The best label and its score for one encoded image, through the module's own path."""
    spec = model.engine.model.spec
    request = FrameRequest(FrameMeta(frame_id="self-test"), payload)
    image = decode_frame(request, limits or FrameLimits(), spec.preprocessing)
    scores = model.engine.run(model.preprocessor(image)[None, ...])[0]
    best = int(np.argmax(scores))
    return spec.labels[best], float(scores[best])


def _blank_frame_test(model: ServingModel) -> SelfTestResult:
    shape = model.preprocessor.input_shape()
    scores = model.engine.run(np.zeros((1, *shape), dtype=np.float32))
    classes = len(model.engine.model.spec.labels)
    if scores.shape != (1, classes) or not np.all(np.isfinite(scores)):
        return SelfTestResult(False, f"blank frame gave scores of shape {scores.shape}, not finite")
    total = float(scores.sum())
    if model.engine.model.spec.output is OutputKind.PROBABILITIES and abs(total - 1.0) > 1e-3:
        return SelfTestResult(False, f"blank frame probabilities sum to {total:.4f}, not 1")
    return SelfTestResult(True, "no golden image in the model's spec; blank-frame check passed")
