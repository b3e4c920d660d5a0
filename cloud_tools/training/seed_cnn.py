"""The "seed" CNN: the architecture of the default model, unchanged from the sample.

Microsoft's "Deploying Deep Learning Models on Kubernetes and Azure IoT Edge" sample trains
this network on CIFAR-10. It is rebuilt here layer for layer, channels-first like the
original (Keras 3 runs channels-first convolution on the CPU too), so that a model trained
on CIFAR-10 and one trained on the synthetic shapes are interchangeable in the module.
"""

from __future__ import annotations

import keras
from keras import layers

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
# The sample's published parameter count; a mismatch means the architecture drifted.
PARAMETER_COUNT = 3_441_592


def build_seed_cnn(num_classes: int = NUM_CLASSES) -> keras.Sequential:
    """Builds (uncompiled) the seed CNN for channels-first 3x32x32 inputs in [0, 1]."""
    cf = "channels_first"
    model = keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE, name="image"),
            layers.Conv2D(50, 3, padding="same", activation="relu", data_format=cf),
            layers.Conv2D(50, 3, padding="same", activation="relu", data_format=cf),
            layers.MaxPooling2D(2, data_format=cf),
            layers.Dropout(0.25),
            layers.Conv2D(100, 3, padding="same", activation="relu", data_format=cf),
            layers.Conv2D(100, 3, padding="same", activation="relu", data_format=cf),
            layers.MaxPooling2D(2, data_format=cf),
            layers.Dropout(0.25),
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
