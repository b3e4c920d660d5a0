"""The arm64v8 images, built and run here under qemu-user emulation (scripts/containers.sh up
registers a qemu that ONNX Runtime runs under): both build, and the classifier scores
``../shared/testdata`` with the amd64 image's labels and confidences."""

from __future__ import annotations

import pytest

from tests.images.conftest import run_in, scores
from tests.images.test_module_images import SCORE, assert_same_scores

# The first test builds both arm64 images under emulation: 7 minutes and more on a cold
# cache (2 cores), beyond the suite's default timeout.
pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(1800)]

# What ONNX Runtime prints under emulation only: qemu's ARM /proc/cpuinfo names no vendor.
EMULATION_ONLY = "onnxruntime cpuid_info warning: Unknown CPU vendor"


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith(EMULATION_ONLY)]


def test_the_arm64_classifier_scores_the_testdata_as_the_amd64_image_does(engine, images):
    amd64, _ = run_in(engine, images("amd64")["classifier"], SCORE)
    arm64, stderr = run_in(engine, images("arm64v8")["classifier"], SCORE)
    assert engine.images.get(images("arm64v8")["classifier"]).attrs["Architecture"] == "arm64"
    assert_same_scores(scores(arm64), scores(amd64))
    assert warnings_in(stderr) == []


@pytest.mark.parametrize("module", ["classifier", "framesource"])
def test_an_arm64_image_starts_without_warnings(engine, images, module):
    image = images("arm64v8")[module]
    _, stderr = run_in(engine, image, ["python", "-c", f"import {module}.__main__"])
    assert warnings_in(stderr) == []
