"""``evaluate``: models' accuracy, side by side, on the data a fine-tune is judged by.

    captures held out   the labelled captures ``train`` never learns from (captures.is_held_out)
    synthetic held out  the first N images of the synthetic test split (the model card's data)
    camera, drifted     the synthetic camera's stream through a drift, at an evaluation seed
    camera, undrifted   the same frames without the drift

The camera rows use a seed of their own (``EVAL_SEED``), not the demo camera's, so frames
captured from the camera and trained on are never the frames measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

import synthdata
from cloud_tools.dataset.captures import labelled, read_image
from cloud_tools.errors import USAGE, CliError
from cloud_tools.model_file import ModelFileError, read_spec

EVAL_SEED = 27_182_818


@dataclass(frozen=True)
class EvalSet:
    name: str
    images: np.ndarray  # uint8 N x 32 x 32 x 3 RGB
    labels: tuple[str, ...]  # the true label of each image


def parse_drift(text: str) -> synthdata.Drift:
    """``angle=1,lighting=0.5`` -> Drift; a bare kind means strength 1."""
    strengths: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in synthdata.DRIFT_KINDS:
            known = ", ".join(synthdata.DRIFT_KINDS)
            raise CliError(f"--drift: unknown kind {kind!r} (known: {known})", USAGE)
        try:
            strengths[kind] = float(value) if value else 1.0
        except ValueError as e:
            raise CliError(f"--drift {part!r}: {e}", USAGE) from e
    try:
        return synthdata.Drift(**strengths)
    except ValueError as e:
        raise CliError(f"--drift: {e}", USAGE) from e


def eval_sets(
    labels_file: Path | None, synthetic: int, drift: synthdata.Drift | None, stream: int
) -> list[EvalSet]:
    sets = []
    if labels_file is not None:
        held = [(c, label) for c, label in labelled(labels_file.parent) if c.held_out]
        if held:
            images = np.stack([read_image(c.frame_path) for c, _ in held])
            sets.append(EvalSet("captures held out", images, tuple(label for _, label in held)))
    if synthetic:
        x, y = synthdata.TEST.generate(synthetic)
        sets.append(EvalSet("synthetic held out", x, label_names(y)))
    if drift is not None and stream:
        x, y = synthdata.make_camera_stream(stream, EVAL_SEED, drift)
        sets.append(EvalSet("camera, drifted", x, label_names(y)))
        x, y = synthdata.make_camera_stream(stream, EVAL_SEED)
        sets.append(EvalSet("camera, undrifted", x, label_names(y)))
    return sets


def label_names(indices: np.ndarray) -> tuple[str, ...]:
    return tuple(synthdata.LABELS[int(i)] for i in indices)


def model_accuracy(model: Path, data: EvalSet) -> tuple[float, float]:
    """(accuracy, mean top-1 confidence) of ``model`` on ``data``, by ONNX Runtime (CPU)."""
    try:
        classes = read_spec(model).labels
    except ModelFileError as e:
        raise CliError(f"{model}: {e}", USAGE) from e
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inputs = np.ascontiguousarray(
        (data.images.astype(np.float32) * np.float32(1.0 / 255.0)).transpose(0, 3, 1, 2)
    )
    name = session.get_inputs()[0].name
    scores = np.concatenate(
        [session.run(None, {name: inputs[i : i + 256]})[0] for i in range(0, len(inputs), 256)]
    )
    predicted = [classes[int(i)] for i in scores.argmax(axis=1)]
    correct = sum(p == t for p, t in zip(predicted, data.labels, strict=True))
    return correct / len(data.labels), float(scores.max(axis=1).mean())


def evaluation_table(models: Sequence[Path], sets: Sequence[EvalSet]) -> list[str]:
    """Markdown rows: one per data set, a column per model (accuracy, mean confidence)."""
    header = "| data | frames | " + " | ".join(m.name for m in models) + " |"
    lines = [header, "|---|---|" + "---|" * len(models)]
    for data in sets:
        cells = []
        for model in models:
            acc, confidence = model_accuracy(model, data)
            cells.append(f"{acc:.1%} (conf {confidence:.2f})")
        lines.append(f"| {data.name} | {len(data.labels)} | " + " | ".join(cells) + " |")
    return lines
