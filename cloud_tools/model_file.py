"""Self-describing ONNX files on the operator's side, without TensorFlow: read and rewrite the
embedded model spec, write the ``.sha256`` file. Training's exporter and the ``model`` commands
both use these, so the CLI starts in a second instead of loading TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import onnxruntime as ort

from classifier.engine import file_sha256
from classifier.errors import ModelSpecError
from classifier.model_spec import METADATA_KEY, ModelSpec


class ModelFileError(RuntimeError):
    """The file is not a self-describing model, or did not read back as written."""


def read_spec(path: Path) -> ModelSpec:
    """The spec embedded in the file, read through ONNX Runtime as the module reads it."""
    try:
        meta = session(path).get_modelmeta().custom_metadata_map
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise ModelFileError(f"ONNX Runtime cannot load {path}: {e}") from e
    if METADATA_KEY not in meta:
        raise ModelFileError(f"{path} carries no '{METADATA_KEY}' metadata")
    try:
        return ModelSpec.from_json(meta[METADATA_KEY])
    except ModelSpecError as e:
        raise ModelFileError(f"{path}: {e}") from e


def write_sha256(path: Path) -> str:
    """Writes ``<file>.sha256`` in ``sha256sum`` format (checkable with ``sha256sum -c``)."""
    digest = file_sha256(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def embed_spec(path: Path, spec: ModelSpec, out: Path | None = None) -> str:
    """Writes ``spec`` into the model (weights untouched) at ``out`` (default: in place);
    returns the new file's sha256 after checking that the spec reads back as written."""
    target = out or path
    proto = onnx.load_model(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props[METADATA_KEY] = spec.to_json()
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = f"{spec.name} {spec.version}"
    save_atomically(proto, target)
    check_embedded_spec(session(target), spec, target)
    return write_sha256(target)


def save_atomically(proto: onnx.ModelProto, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # write beside the target and rename, so a reader never sees a half-written model
    partial = path.with_name(path.name + ".partial")
    onnx.save_model(proto, str(partial))
    os.replace(partial, path)


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def check_embedded_spec(loaded: ort.InferenceSession, spec: ModelSpec, path: Path) -> None:
    # read back through ONNX Runtime, as the module will, not through the onnx package
    embedded = loaded.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if embedded is None or ModelSpec.from_json(embedded) != spec:
        raise ModelFileError(f"{path}: embedded model spec does not read back as written")
