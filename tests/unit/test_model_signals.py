"""The signals a canary is judged on, per model version over a sliding window."""

from __future__ import annotations

import pytest

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import FrameMeta
from classifier.predictions import FrameFailure, ModelInfo, Prediction
from classifier.quality.signals import ModelSignals

OLD = ModelInfo("seed", "1.0.0", "a" * 64, "CPUExecutionProvider")
NEW = ModelInfo("seed", "1.1.0", "b" * 64, "CPUExecutionProvider")


def _prediction(model: ModelInfo, confidence: float, total_ms: float = 2.0) -> Prediction:
    labels = (("star", confidence), ("heart", 1 - confidence))
    return Prediction(FrameMeta("f"), labels, model, {"total": total_ms}, 32, 32)


def _failure(code: FrameErrorCode) -> FrameFailure:
    return FrameFailure(FrameMeta("f"), FrameError(code, "x"))


def test_each_model_version_gets_its_own_confidence_share_errors_and_latency() -> None:
    signals = ModelSignals(window_s=60, low_confidence_below=0.5)
    for confidence, ms in [(0.9, 1.0), (0.8, 2.0), (0.3, 3.0), (0.7, 10.0)]:
        signals.observe(_prediction(OLD, confidence, ms), OLD)
    signals.observe(_failure(FrameErrorCode.INFERENCE_FAILED), OLD)
    signals.observe(_prediction(NEW, 0.99), NEW)
    models = signals.report()["models"]
    old = models["a" * 12]
    assert old["version"] == "1.0.0" and old["frames"] == 5
    assert old["mean_confidence"] == pytest.approx(0.675)
    assert old["low_confidence_share"] == 0.25
    assert old["error_rate"] == 0.2
    assert (old["p50_ms"], old["p99_ms"]) == (2.0, 10.0)
    assert models["b" * 12]["mean_confidence"] == 0.99 and models["b" * 12]["error_rate"] == 0


def test_a_camera_s_bad_frames_do_not_count_against_the_model() -> None:
    signals = ModelSignals()
    signals.observe(_prediction(OLD, 0.9), OLD)
    signals.observe(_failure(FrameErrorCode.CORRUPT_IMAGE), OLD)
    signals.observe(_failure(FrameErrorCode.OVERLOADED), OLD)
    assert signals.report()["models"]["a" * 12]["error_rate"] == 0


def test_outcomes_older_than_the_window_leave_the_signals() -> None:
    now = [0.0]
    signals = ModelSignals(window_s=10, clock=lambda: now[0])
    signals.observe(_prediction(OLD, 0.2), OLD)
    now[0] = 5.0
    signals.observe(_prediction(NEW, 0.9), NEW)
    now[0] = 12.0
    assert list(signals.report()["models"]) == ["b" * 12]
    now[0] = 30.0
    assert signals.report()["models"] == {}
