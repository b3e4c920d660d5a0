"""The models benchmarks run: the bundled default, and MobileNetV2 from the project's exporter.

MobileNetV2 (224x224, random weights) is built once with ``cloud_tools``' own Keras -> ONNX
export and cached under build/; random weights cost exactly what trained ones do.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "modules" / "classifier" / "models" / "seed-cnn-synth10.onnx"
BUILD = REPO / "build" / "models"


def ensure_model(name: str) -> Path:
    if name == "default":
        if not DEFAULT_MODEL.is_file():
            raise FileNotFoundError(f"the default model is missing: {DEFAULT_MODEL}")
        return DEFAULT_MODEL
    if name == "mobilenetv2":
        path = BUILD / "mobilenetv2-random.onnx"
        if not path.is_file():
            BUILD.mkdir(parents=True, exist_ok=True)
            # A child process keeps TensorFlow out of the benchmark's own memory and threads.
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cloud_tools.training.export",
                    "mobilenetv2",
                    "--out",
                    str(path),
                ],
                cwd=REPO,
                check=True,
            )
        return path
    raise ValueError(f"unknown model {name!r}: use default or mobilenetv2")
