"""Camera drift in the synthetic generator and the frame source's settings for it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import synthdata
from edge_module.errors import SettingsError
from framesource.config import FrameSourceConfig
from framesource.settings import SourceSettings, source_from_twin
from framesource.sources.synthetic import make_frame

SEED = 1234


def _frame(index: int, drift: synthdata.Drift) -> np.ndarray:
    return synthdata.render_drifted(
        index % 10,
        synthdata.sample_rng(SEED, index),
        160,
        120,
        drift,
        synthdata.drift_rng(SEED, index),
    )


def test_an_undrifted_camera_renders_exactly_the_frames_it_rendered_before_drift_existed() -> None:
    before = synthdata.render(3, synthdata.sample_rng(SEED, 3), 160, 120)
    np.testing.assert_array_equal(_frame(3, synthdata.NO_DRIFT), before)


@pytest.mark.parametrize("kind", synthdata.DRIFT_KINDS)
def test_each_kind_of_drift_changes_the_frame_and_is_reproducible(kind: str) -> None:
    # background replaces the backdrop of a share of frames: at strength 1, of every frame
    drift = synthdata.Drift.only(kind)
    drifted = _frame(7, drift)
    assert drifted.shape == (120, 160, 3) and drifted.dtype == np.uint8
    assert not np.array_equal(drifted, _frame(7, synthdata.NO_DRIFT))
    np.testing.assert_array_equal(drifted, _frame(7, drift))


def test_darker_lighting_lowers_the_frame_s_brightness() -> None:
    plain = _frame(2, synthdata.NO_DRIFT).mean()
    assert _frame(2, synthdata.Drift.only("lighting", 0.5)).mean() < plain
    assert _frame(2, synthdata.Drift.only("lighting", 1.0)).mean() < plain * 0.5


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan")])
def test_a_drift_strength_outside_zero_to_one_is_refused(strength: float) -> None:
    with pytest.raises(ValueError, match="must be in"):
        synthdata.Drift(blur=strength)


def test_the_camera_stream_matches_the_frames_the_frame_source_sends() -> None:
    drift = synthdata.Drift(angle=1.0, lighting=0.5)
    images, labels = synthdata.make_camera_stream(3, SEED, drift)
    sent = make_frame("cam", SEED, 2, 320, 240, 85, drift)
    assert sent.truth == synthdata.LABELS[int(labels[2])]
    decoded = synthdata.shrink(synthdata.jpeg_round_trip(_decode(sent.jpeg), 100), 32)
    # the stream re-encodes at quality 85 once; the sent frame was decoded and encoded again
    assert np.abs(decoded.astype(int) - images[2].astype(int)).mean() < 6


def _decode(jpeg: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    rgb: np.ndarray = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return rgb


def test_the_environment_sets_the_synthetic_camera_s_drift() -> None:
    config = FrameSourceConfig.from_env({"DRIFT_ANGLE": "0.8", "DRIFT_LIGHTING": "0.25"})
    assert config.source.drift == synthdata.Drift(angle=0.8, lighting=0.25)


def test_the_twin_sets_drift_and_a_bad_strength_rejects_the_section_whole() -> None:
    base = SourceSettings()
    applied = source_from_twin({"drift_blur": 0.5, "drift_noise": 1}, base)
    assert applied.drift == synthdata.Drift(blur=0.5, noise=1.0)
    with pytest.raises(SettingsError, match=r"source\.drift_angle=2 is out of range"):
        source_from_twin({"drift_blur": 0.5, "drift_angle": 2}, base)


def test_drift_on_a_real_camera_is_refused() -> None:
    with pytest.raises(SettingsError, match="synthetic source only"):
        FrameSourceConfig.from_env({"SOURCE_URL": "rtsp://cam.local/s", "DRIFT_BLUR": "0.5"})
