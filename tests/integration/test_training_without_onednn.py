"""Training and export work on CPUs where TensorFlow has no channels-first convolution.

TensorFlow enables its oneDNN kernels by default only on CPUs with AVX-512-class features;
without them (AVX2 laptops and servers, many CI machines) a channels-first ``Conv2D`` does not
exist on the CPU. ``TF_ENABLE_ONEDNN_OPTS=0`` gives any machine that view, so these tests run
the real CLI and the real Keras model in a subprocess with it set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("tensorflow")

import synthdata
from cloud_tools.training import train
from tests.conftest import DEFAULT_MODEL, REPO

pytestmark = pytest.mark.slow


def _without_onednn(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=600
    )


def _ort_outputs(path: Path, inputs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: inputs})[0])


def test_training_and_export_run_without_onednn(tmp_path: Path) -> None:
    out = tmp_path / "tiny.onnx"
    done = _without_onednn(
        "-m",
        "cloud_tools.train",
        "--dataset=synthetic",
        "--train-size=128",
        "--test-size=64",
        "--epochs=1",
        f"--out={out}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # TensorFlow announces oneDNN when it is on; the subprocess really ran without it.
    assert "oneDNN custom operations are on" not in done.stderr
    assert "ONNX Runtime vs Keras" in done.stdout
    images = train.to_model_input(synthdata.TEST.generate(8)[0])
    assert _ort_outputs(out, images).shape == (8, len(synthdata.LABELS))


def test_the_graph_computes_the_shipped_channels_first_model_exactly(tmp_path: Path) -> None:
    # The shipped model was exported from the sample's channels-first layers. Its weights in
    # today's channels-last graph must give the same outputs: same function, same contract.
    inputs = train.to_model_input(synthdata.TEST.generate(32)[0])
    np.save(tmp_path / "in.npy", inputs)
    done = _without_onednn(
        "-m",
        "tests.support.seed_cnn_replay",
        str(DEFAULT_MODEL),
        str(tmp_path / "in.npy"),
        str(tmp_path / "out.npy"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    keras_out = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(keras_out, _ort_outputs(DEFAULT_MODEL, inputs), atol=1e-5)
    assert (keras_out.argmax(axis=1) == _ort_outputs(DEFAULT_MODEL, inputs).argmax(axis=1)).all()
