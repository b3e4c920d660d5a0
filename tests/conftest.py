from __future__ import annotations

# First, before any test module loads OpenCV: the package caps OpenCV's image-size limits,
# which OpenCV reads only once, as it loads (classifier/opencv_limits.py).
import classifier  # noqa: F401  # isort: skip
import os
from pathlib import Path

import numpy as np
import pytest

# The container engine fixture (``engine``) of the tests marked ``containers``.
pytest_plugins = ["tests.support.container_engine"]

REPO = Path(__file__).resolve().parents[1]
# CI and every checkout keep the team's shared folder beside the repository.
SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
TESTDATA = SHARED / "testdata"
DEFAULT_MODEL = REPO / "modules" / "classifier" / "models" / "seed-cnn-synth10.onnx"


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not TESTDATA.is_dir():
        pytest.fail(f"shared test data not found at {TESTDATA} (set SHARED_DIR)")
    return TESTDATA


@pytest.fixture
def colour_model(tmp_path: Path) -> Path:
    from tests.support.tiny_models import write_colour_model

    return write_colour_model(tmp_path / "colour.onnx")


def solid_rgb(colour: tuple[int, int, int], width: int = 64, height: int = 48) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :] = colour
    return image
