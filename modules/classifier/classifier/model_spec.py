"""What a model file says about itself: labels and how frames must be prepared for it.

A model is self-describing: the exporter writes one JSON document into the ONNX file's
metadata under ``METADATA_KEY``. Models made elsewhere carry the same document as a sidecar
file next to the model (``<model>.onnx.json`` or ``<model>.json``). The document's schema is
versioned (``SPEC_VERSION``); see docs/model-spec.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from classifier.errors import ModelSpecError

METADATA_KEY = "edge_classifier.spec"
SPEC_VERSION = 1


class Layout(StrEnum):
    NCHW = "NCHW"
    NHWC = "NHWC"


class ChannelOrder(StrEnum):
    RGB = "RGB"
    BGR = "BGR"
    GRAY = "GRAY"


class ResizeMode(StrEnum):
    STRETCH = "stretch"
    LETTERBOX = "letterbox"
    CENTER_CROP = "center_crop"


class OutputKind(StrEnum):
    PROBABILITIES = "probabilities"
    LOGITS = "logits"


@dataclass(frozen=True)
class Preprocessing:
    """Turns a decoded uint8 image into the model's input: ``((pixel * scale) - mean) / std``.

    ``mean`` and ``std`` are per channel, in the model's channel order, applied after ``scale``.
    """

    width: int
    height: int
    layout: Layout = Layout.NCHW
    channel_order: ChannelOrder = ChannelOrder.RGB
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resize: ResizeMode = ResizeMode.STRETCH
    # letterbox padding value, in the 0-255 pixel domain (before scale/mean/std)
    pad_value: int = 114

    @property
    def channels(self) -> int:
        return 1 if self.channel_order is ChannelOrder.GRAY else 3


@dataclass(frozen=True)
class SelfTest:
    """A golden input and the answer the model must give, checked before a model goes live."""

    image_base64: str  # an encoded image (JPEG, PNG or BMP), decoded as frames are
    label: str
    min_confidence: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    output: OutputKind = OutputKind.PROBABILITIES
    # free-form provenance: dataset, accuracy, training seed, ...
    info: dict[str, Any] = field(default_factory=dict)
    self_test: SelfTest | None = None

    def to_json(self) -> str:
        doc = asdict(self)
        if self.self_test is None:
            del doc["self_test"]
        doc["spec_version"] = SPEC_VERSION
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSpec:
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelSpecError(f"model spec is not valid JSON: {e}") from e
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> ModelSpec:
        if not isinstance(doc, dict):
            raise ModelSpecError("model spec must be a JSON object")
        version = doc.get("spec_version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise ModelSpecError(f"unsupported model spec version {version!r}")
        try:
            pre = doc["preprocessing"]
            if not isinstance(pre, dict):
                raise ModelSpecError("'preprocessing' must be an object")
            preprocessing = Preprocessing(
                width=_positive_int(pre["width"], "width"),
                height=_positive_int(pre["height"], "height"),
                layout=Layout(pre.get("layout", Layout.NCHW)),
                channel_order=ChannelOrder(pre.get("channel_order", ChannelOrder.RGB)),
                scale=_finite(pre.get("scale", 1.0 / 255.0), "scale"),
                mean=tuple(_finite(v, "mean") for v in pre.get("mean", (0.0, 0.0, 0.0))),
                std=tuple(_finite(v, "std") for v in pre.get("std", (1.0, 1.0, 1.0))),
                resize=ResizeMode(pre.get("resize", ResizeMode.STRETCH)),
                pad_value=int(pre.get("pad_value", 114)),
            )
            labels = doc["labels"]
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise ModelSpecError("'labels' must be a list of strings")
            spec = cls(
                name=str(doc["name"]),
                version=str(doc["version"]),
                labels=tuple(labels),
                preprocessing=preprocessing,
                output=OutputKind(doc.get("output", OutputKind.PROBABILITIES)),
                info=dict(doc.get("info", {})),
                self_test=_self_test(doc.get("self_test")),
            )
        except KeyError as e:
            raise ModelSpecError(f"model spec lacks required field {e.args[0]!r}") from e
        except (TypeError, ValueError) as e:
            raise ModelSpecError(f"model spec is invalid: {e}") from e
        _check_channels(spec.preprocessing)
        if not spec.labels:
            raise ModelSpecError("model spec has no labels")
        if spec.self_test is not None and spec.self_test.label not in spec.labels:
            raise ModelSpecError(f"self_test label {spec.self_test.label!r} is not a model label")
        return spec


def _self_test(doc: Any) -> SelfTest | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ModelSpecError("'self_test' must be an object")
    image, label = doc.get("image_base64"), doc.get("label")
    if not isinstance(image, str) or not image or not isinstance(label, str):
        raise ModelSpecError("'self_test' needs 'image_base64' and 'label' strings")
    confidence = _finite(doc.get("min_confidence", 0.0), "min_confidence")
    if not 0.0 <= confidence <= 1.0:
        raise ModelSpecError("'self_test.min_confidence' must be in 0..1")
    return SelfTest(image, label, confidence)


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value > 8192:
        raise ModelSpecError(f"'{name}' must be an integer in 1..8192, got {value!r}")
    return value


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelSpecError(f"'{name}' must be a finite number, got {value!r}")
    return float(value)


def _check_channels(pre: Preprocessing) -> None:
    n = pre.channels
    if len(pre.mean) != n or len(pre.std) != n:
        raise ModelSpecError(f"mean and std need {n} values for {pre.channel_order}")
    if any(s == 0.0 for s in pre.std):
        raise ModelSpecError("std values must be non-zero")


def sidecar_candidates(model_path: Path) -> list[Path]:
    """Where a sidecar spec for a model made elsewhere may live, most specific first."""
    return [model_path.with_name(model_path.name + ".json"), model_path.with_suffix(".json")]
