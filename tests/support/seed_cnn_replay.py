"""Runs the shipped default model's weights through the Keras seed CNN; writes the outputs.

Run as a subprocess by ``tests/integration/test_training_without_onednn.py`` so that it can
set ``TF_ENABLE_ONEDNN_OPTS`` before TensorFlow is imported:

    python -m tests.support.seed_cnn_replay MODEL.onnx INPUTS.npy OUTPUTS.npy
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cloud_tools.training import seed_cnn


def main(argv: list[str]) -> int:
    model_path, inputs_path, outputs_path = (Path(a) for a in argv)
    model = seed_cnn.build_seed_cnn()
    seed_cnn.load_weights_from_onnx(model, model_path)
    outputs = np.asarray(model.predict(np.load(inputs_path), verbose=0))
    np.save(outputs_path, outputs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
