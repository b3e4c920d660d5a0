"""The "seed" CNN: the architecture of the default model, unchanged from the sample.

Microsoft's "Deploying Deep Learning Models on Kubernetes and Azure IoT Edge" sample trains
this network on CIFAR-10 with channels-first 3x32x32 inputs. That input contract is kept, so a
model trained on CIFAR-10 and one trained on the synthetic shapes are interchangeable in the
module, but the layers compute in channels-last inside the graph.

Why: TensorFlow's CPU kernels for channels-first convolution (and its gradients) exist only
through oneDNN, which TensorFlow turns on by default only on CPUs with AVX-512-class features.
On an AVX2 laptop, an older server, or with ``TF_ENABLE_ONEDNN_OPTS=0``, a channels-first
``Conv2D`` fails with "only supports the NHWC tensor format". Channels-last runs everywhere.

The two permutations keep the function identical to the sample's: the input is moved to
channels-last once, and moved back to channels-first before ``Flatten`` so the flattened order
(and with it the first dense layer's weights) is the sample's. Kernels are stored as
(kh, kw, in, out) in either layout, so weights of a channels-first seed model load unchanged.
Neither permutation has parameters, and tf2onnx folds both into the convolutions on export.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import onnx
from keras import layers
from onnx import numpy_helper

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
# The sample's published parameter count; a mismatch means the architecture drifted.
PARAMETER_COUNT = 3_441_592


class WeightsMismatchError(ValueError):
    """An ONNX file's weights do not fit the seed CNN being built."""


_TO_CHANNELS_LAST = (2, 3, 1)  # (C, H, W) -> (H, W, C); Permute's axes exclude the batch
_TO_CHANNELS_FIRST = (3, 1, 2)  # (H, W, C) -> (C, H, W)


def build_seed_cnn(num_classes: int = NUM_CLASSES) -> keras.Sequential:
    """Builds (uncompiled) the seed CNN for channels-first 3x32x32 inputs in [0, 1]."""
    cl = "channels_last"
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="image"),
            layers.Permute(_TO_CHANNELS_LAST, name="to_channels_last"),
            layers.Conv2D(50, 3, padding="same", activation="relu", data_format=cl),
            layers.Conv2D(50, 3, padding="same", activation="relu", data_format=cl),
            layers.MaxPooling2D(2, data_format=cl),
            layers.Dropout(0.25),
            layers.Conv2D(100, 3, padding="same", activation="relu", data_format=cl),
            layers.Conv2D(100, 3, padding="same", activation="relu", data_format=cl),
            layers.MaxPooling2D(2, data_format=cl),
            layers.Dropout(0.25),
            layers.Permute(_TO_CHANNELS_FIRST, name="to_channels_first"),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="seed_cnn",
    )
    if num_classes == NUM_CLASSES and model.count_params() != PARAMETER_COUNT:
        raise AssertionError(
            f"seed CNN has {model.count_params()} parameters, expected {PARAMETER_COUNT}"
        )
    return model


def compile_like_the_seed(model: keras.Model, learning_rate: float = 0.01) -> None:
    """The sample's optimiser: plain SGD with momentum 0.9, cross-entropy loss."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def load_weights_from_onnx(model: keras.Model, path: Path) -> None:
    """Copies the weights of an exported seed CNN (an ONNX file) into ``model``.

    Used to fine-tune the shipped default model, and to prove that this graph computes the
    same function as the channels-first one it was exported from. ONNX stores convolution
    kernels as (out, in, kh, kw) and Keras as (kh, kw, in, out); dense layers agree. A bias
    that tf2onnx folded away (all zeros) comes back as zeros.
    """
    graph = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    found: list[list[np.ndarray]] = []
    for node in graph.node:
        if node.op_type == "Conv":
            kernel = init[node.input[1]].transpose(2, 3, 1, 0)
            bias = init[node.input[2]] if len(node.input) > 2 else np.zeros(kernel.shape[-1])
            found.append([kernel, bias])
        elif node.op_type == "MatMul" and node.input[1] in init:
            kernel = init[node.input[1]]
            found.append([kernel, np.zeros(kernel.shape[1], dtype=kernel.dtype)])
        elif node.op_type == "Add" and found and node.input[1] in init:
            found[-1][1] = init[node.input[1]]
    targets = [layer for layer in model.layers if layer.weights]
    if len(found) != len(targets):
        raise WeightsMismatchError(
            f"{path.name} has {len(found)} weighted layers, the model {len(targets)}"
        )
    for layer, weights in zip(targets, found, strict=True):
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise WeightsMismatchError(f"{path.name}: layer {layer.name} wants {expected}")
        layer.set_weights([w.astype(np.float32) for w in weights])
