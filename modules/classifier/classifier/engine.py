"""ONNX Runtime inference: model checks, batching to the model's batch size.

ONNX Runtime falls back down the provider list without raising when a GPU provider cannot
start (missing CUDA or cuDNN libraries, for one). The engine asks for the chain that
``providers`` picks, compares it with what the session reports, and always reports both the
chain asked for and the provider really in use.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from classifier.errors import ModelIncompatibleError, ModelLoadError, ModelSpecError
from classifier.inference_lanes import CPU_PROVIDER, auto_lanes, lanes_for_model
from classifier.model_spec import METADATA_KEY, Layout, ModelSpec, OutputKind, sidecar_candidates
from classifier.providers import ProviderPolicy, ProviderRequest, request_providers

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EngineOptions:
    provider: str = "auto"  # auto, tensorrt, cuda, openvino, cpu
    policy: ProviderPolicy = ProviderPolicy.AUTO
    intra_op_threads: int = 0  # 0 lets ONNX Runtime use every core (1 in lanes, unless set)
    inter_op_threads: int = 1
    # Batches of this model inferred at once, each run single-threaded (inference_lanes.py);
    # None: decided per model by the module's rule. Only for CPU models.
    lanes: int | None = 1
    # ONNX Runtime's threads spin between runs by default; off here, because the pipeline's
    # decoders need those cores (measured in docs/benchmarks.md: 440 -> 264 us of CPU per frame)
    spin: bool = False


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    sha256: str
    spec: ModelSpec


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def requested_providers(
    options: EngineOptions, available: Sequence[str] | None = None
) -> ProviderRequest:
    """The provider chain for ``options`` on this onnxruntime build (or ``available``)."""
    offered = ort.get_available_providers() if available is None else available
    return request_providers(options.provider, options.policy, offered)


def _may_get_lanes(options: EngineOptions) -> bool:
    """Whether a model loaded with ``options`` may run in lanes: never where auto gives none
    on this machine, nor where a GPU is asked for first (its session, a TensorRT engine
    perhaps, is not built twice to find out)."""
    if options.lanes == 1:
        return False
    if options.lanes is None and auto_lanes(options.intra_op_threads) == 1:
        return False
    return requested_providers(options).providers[0] == CPU_PROVIDER


def read_spec(path: Path, session: ort.InferenceSession) -> ModelSpec:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY in meta:
        return ModelSpec.from_json(meta[METADATA_KEY])
    for candidate in sidecar_candidates(path):
        if candidate.is_file():
            return ModelSpec.from_json(candidate.read_bytes())
    names = ", ".join(str(p.name) for p in sidecar_candidates(path))
    raise ModelSpecError(
        f"{path.name} carries no '{METADATA_KEY}' metadata and has no sidecar ({names})"
    )


class InferenceEngine:
    """One loaded model. ``run`` is called from one worker thread at a time."""

    def __init__(
        self,
        session: ort.InferenceSession,
        model: LoadedModel,
        provider: str,
        requested: tuple[str, ...] = (),
        lanes: int = 1,
    ) -> None:
        self.session = session
        self.model = model
        self.provider = provider  # the provider that really runs the model
        self.requested = requested or (provider,)  # the chain asked for, best first
        self.lanes = lanes  # batches that may run at once (each on one thread when > 1)
        inp = session.get_inputs()[0]
        self._input_name = inp.name
        self._output_name = session.get_outputs()[0].name
        batch_dim = inp.shape[0]
        # A fixed batch dimension (often 1 in exported models) is honoured by chunking.
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None

    @classmethod
    def from_path(cls, path: Path, options: EngineOptions | None = None) -> InferenceEngine:
        options = options or EngineOptions()
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        if not _may_get_lanes(options):
            return cls._load(path, options, options.intra_op_threads)
        # Lanes need single-threaded runs, which is fixed when the session is made; the
        # model's input (and so whether it gets lanes) is known once it is. Loaded again on
        # every core when it does not (a small cost on the CPU, where lanes apply at all).
        lane_threads = options.intra_op_threads or 1
        engine = cls._load(path, options, lane_threads)
        lanes = lanes_for_model(
            options.lanes, engine.provider, engine.input_pixels, options.intra_op_threads
        )
        if lanes > 1:
            engine.lanes = lanes
            return engine
        if lane_threads == options.intra_op_threads:
            return engine
        return cls._load(path, options, options.intra_op_threads)

    @property
    def input_pixels(self) -> int:
        pre = self.model.spec.preprocessing
        return pre.width * pre.height

    @classmethod
    def _load(cls, path: Path, options: EngineOptions, intra_op_threads: int) -> InferenceEngine:
        request = requested_providers(options)
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = intra_op_threads
        session_options.inter_op_num_threads = options.inter_op_threads
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not options.spin:
            # Between runs ONNX Runtime's threads spin waiting for the next one; in a pipeline
            # whose decode threads need the same cores, that spinning is stolen from decoding.
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session_options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(path), session_options, providers=list(request.providers)
            )
        except Exception as e:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            raise ModelLoadError(f"ONNX Runtime cannot load {path}: {e}") from e
        in_use = session.get_providers()[0]
        request.check_in_use(in_use, path.name)
        spec = read_spec(path, session)
        model = LoadedModel(path=path, sha256=file_sha256(path), spec=spec)
        engine = cls(session, model, in_use, request.providers)
        engine.check_signature()
        return engine

    def check_signature(self) -> None:
        pre = self.model.spec.preprocessing
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelIncompatibleError(f"expected one image input, the model has {len(inputs)}")
        shape = inputs[0].shape
        expected: tuple[int, int, int] = (
            (pre.channels, pre.height, pre.width)
            if pre.layout is Layout.NCHW
            else (pre.height, pre.width, pre.channels)
        )
        if len(shape) != 4:
            raise ModelIncompatibleError(
                f"input {inputs[0].name} has rank {len(shape)}, expected 4"
            )
        for got, want in zip(shape[1:], expected, strict=True):
            if isinstance(got, int) and got != want:
                raise ModelIncompatibleError(
                    f"input shape {shape} does not match the spec's {pre.layout} {expected}"
                )
        outputs = self.session.get_outputs()
        classes = outputs[0].shape[-1]
        if isinstance(classes, int) and classes != len(self.model.spec.labels):
            raise ModelIncompatibleError(
                f"the model outputs {classes} classes but the spec lists "
                f"{len(self.model.spec.labels)} labels"
            )

    def run(self, batch: FloatArray) -> FloatArray:
        """Class probabilities for a batch, shape (N, classes)."""
        if self.fixed_batch is None or len(batch) == self.fixed_batch:
            scores = self._run(batch)
        else:
            scores = np.concatenate([self._run_padded(c) for c in self._chunks(batch)])
        if self.model.spec.output is OutputKind.LOGITS:
            scores = softmax(scores)
        return scores

    def _chunks(self, batch: FloatArray) -> list[FloatArray]:
        size = self.fixed_batch or len(batch)
        return [batch[i : i + size] for i in range(0, len(batch), size)]

    def _run_padded(self, chunk: FloatArray) -> FloatArray:
        assert self.fixed_batch is not None
        n = len(chunk)
        if n < self.fixed_batch:
            pad = np.zeros((self.fixed_batch - n, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        return self._run(chunk)[:n]

    def _run(self, batch: FloatArray) -> FloatArray:
        out: Any = self.session.run([self._output_name], {self._input_name: batch})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)

    def warm_up(self) -> None:
        """One inference on zeros before reporting ready.

        The first run allocates buffers and (on GPUs) builds kernels or TensorRT engines; doing
        it here keeps that stall out of the first real frame's latency.
        """
        pre = self.model.spec.preprocessing
        shape = (
            (pre.channels, pre.height, pre.width)
            if pre.layout is Layout.NCHW
            else (pre.height, pre.width, pre.channels)
        )
        self.run(np.zeros((self.fixed_batch or 1, *shape), dtype=np.float32))


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return result
