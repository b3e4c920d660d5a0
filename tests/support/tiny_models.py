"""Small real ONNX models built with onnx.helper, whose answers are known in advance.

The "colour" model scores each class by the mean of one input channel: a pure red frame must
come out "red". That checks channel order, layout and normalisation end to end through the
real decode -> preprocess -> ONNX Runtime path, in milliseconds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from classifier.model_spec import (
    METADATA_KEY,
    ChannelOrder,
    Layout,
    ModelSpec,
    OutputKind,
    Preprocessing,
    ResizeMode,
)

COLOUR_LABELS = ("red", "green", "blue")


def colour_spec(
    layout: Layout = Layout.NCHW,
    size: int = 32,
    output: OutputKind = OutputKind.PROBABILITIES,
    resize: ResizeMode = ResizeMode.STRETCH,
) -> ModelSpec:
    return ModelSpec(
        name="colour-test",
        version="0.0.1",
        labels=COLOUR_LABELS,
        preprocessing=Preprocessing(
            width=size, height=size, layout=layout, channel_order=ChannelOrder.RGB, resize=resize
        ),
        output=output,
    )


def write_colour_model(
    path: Path,
    spec: ModelSpec | None = None,
    batch: int | None = None,
    embed_spec: bool = True,
) -> Path:
    spec = spec or colour_spec()
    pre = spec.preprocessing
    nchw = pre.layout is Layout.NCHW
    dims = [pre.channels, pre.height, pre.width] if nchw else [pre.height, pre.width, pre.channels]
    batch_dim: int | str = batch if batch is not None else "N"
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch_dim, *dims])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch_dim, 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3] if nchw else [1, 2])
    gain = helper.make_tensor("gain", TensorProto.FLOAT, [], [20.0])
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "gain"], ["logits"]),
    ]
    if spec.output is OutputKind.PROBABILITIES:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["logits"], ["scores"]))
    graph = helper.make_graph(nodes, "colour", [x], [y], initializer=[axes, gain])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if embed_spec:
        helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def write_versioned_colour_model(path: Path, version: str, reversed_labels: bool = False) -> Path:
    """The colour model under another version. With ``reversed_labels`` it names its classes
    blue, green, red, so a red frame scores "blue": predictions show which model served."""
    labels = tuple(reversed(COLOUR_LABELS)) if reversed_labels else COLOUR_LABELS
    return write_colour_model(path, replace(colour_spec(), version=version, labels=labels))


def write_model_failing_on_batches(path: Path) -> Path:
    """Scores batches of one (warm-up, self-test) and fails on any larger batch: a reshape to
    a fixed [1, 3]. A model that passes its checks and then breaks on live traffic."""
    spec = replace(colour_spec(), version="batch-one")
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 3])
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["mean"], keepdims=0),
        helper.make_node("Reshape", ["mean", "shape"], ["one"]),
        helper.make_node("Softmax", ["one"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(nodes, "batch-one", [x], [y], initializer=[axes, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    helper.set_model_props(model, {METADATA_KEY: spec.to_json()})
    onnx.save(model, str(path))
    return path


def write_incompatible_model(path: Path) -> Path:
    """A graph taking 16x16 frames whose spec promises 32x32: the pipeline would feed it the
    wrong shape."""
    write_colour_model(path, replace(colour_spec(size=16), version="incompatible"))
    model = onnx.load(str(path))
    del model.metadata_props[:]
    helper.set_model_props(
        model, {METADATA_KEY: replace(colour_spec(), version="incompatible").to_json()}
    )
    onnx.save(model, str(path))
    return path


def write_slow_colour_model(path: Path, version: str, iterations: int) -> Path:
    """The colour model with ``iterations`` 512x512 matrix products in every inference (an ONNX
    Loop whose result is added times zero): its answers are the colour model's, but loading it
    (warm-up, self-test) takes seconds, long enough to act on a module while it loads."""
    write_colour_model(path, replace(colour_spec(), version=version))
    model = onnx.load(str(path))
    graph = model.graph
    size = 512
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("MatMul", ["state_in", "eye"], ["state_out"]),
        ],
        "products",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [size, size]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [size, size]),
        ],
    )
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.eye(size, dtype=np.float32), "eye"),
            helper.make_tensor("trips", TensorProto.INT64, [], [iterations]),
            helper.make_tensor("always", TensorProto.BOOL, [], [True]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ]
    )
    logits = next(n for n in graph.node if n.op_type == "Mul")
    logits.output[0] = "colour_logits"
    # The loop's start depends on the frame, so nothing of it can be computed ahead of time.
    graph.node.extend(
        [
            helper.make_node("ReduceMean", ["image"], ["level"], keepdims=0),
            helper.make_node("Mul", ["eye", "level"], ["start"]),
            helper.make_node("Loop", ["trips", "always", "start"], ["product"], body=body),
            helper.make_node("ReduceSum", ["product"], ["total"], keepdims=0),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
            helper.make_node("Add", ["colour_logits", "nothing"], ["logits"]),
        ]
    )
    # Softmax reads "logits" and must come last: move it to the end of the list.
    softmax = next(n for n in graph.node if n.op_type == "Softmax")
    kept = [n for n in graph.node if n is not softmax]
    del graph.node[:]
    graph.node.extend([*kept, softmax])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
