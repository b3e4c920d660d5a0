"""A copy of a self-describing model with a new name or version, or a golden self-test image.

The weights are untouched; only the embedded spec changes, so the copy has its own sha256 and
can be pushed as a new version. A self-test image is checked against the model on the spot,
with the module's own decode and preprocessing, so a model never ships a test it fails.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

from classifier.engine import InferenceEngine
from classifier.errors import FrameError
from classifier.model_spec import ModelSpec, SelfTest
from classifier.model_store import ServingModel
from classifier.model_update.candidate import classify_image
from cloud_tools.errors import USAGE, CliError
from cloud_tools.model_file import ModelFileError, embed_spec, read_spec


def stamp_model(
    source: Path,
    out: Path,
    *,
    name: str | None = None,
    version: str | None = None,
    self_test_image: Path | None = None,
    expect: str | None = None,
    min_confidence: float = 0.5,
) -> tuple[ModelSpec, str]:
    try:
        spec = read_spec(source)
    except ModelFileError as e:
        raise CliError(str(e), USAGE) from e
    spec = replace(spec, name=name or spec.name, version=version or spec.version)
    if self_test_image is not None:
        spec = replace(
            spec, self_test=_golden(source, spec, self_test_image, expect, min_confidence)
        )
    digest = embed_spec(source, spec, out)
    return spec, digest


def _golden(
    source: Path, spec: ModelSpec, image: Path, expect: str | None, min_confidence: float
) -> SelfTest:
    if expect is not None and expect not in spec.labels:
        raise CliError(f"--expect {expect!r} is not one of the model's labels", USAGE)
    payload = image.read_bytes()
    model = ServingModel.from_engine(InferenceEngine.from_path(source))
    try:
        answer, confidence = classify_image(model, payload)
    except (FrameError, ValueError) as e:
        raise CliError(f"the self-test image cannot be scored: {e}", USAGE) from e
    label = expect or answer
    if answer != label or confidence < min_confidence:
        raise CliError(
            f"the model answers {answer} ({confidence:.3f}) on {image.name}; "
            f"a self-test of {label} with confidence >= {min_confidence} would fail",
            USAGE,
        )
    return SelfTest(base64.b64encode(payload).decode(), label, min_confidence)
