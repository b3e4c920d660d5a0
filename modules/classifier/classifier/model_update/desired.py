"""The module twin's desired properties, schema 1.x, validated as a whole into typed objects.

    {
      "schemaVersion": "1.0",
      "model": {"name": "...", "version": "...", "url": "https://...", "sha256": "<64 hex>",
                "size": 13771758, "signature": "<base64 ed25519>"},
      "inference": {"top_k": 3, "confidence_threshold": 0.2, "max_batch": 8,
                    "max_wait_ms": 5, "provider": "auto", "provider_policy": "auto"},
      "capture": {"low_confidence": {"below": 0.5, "per_minute": 30}, ...}
    }

``model`` absent or null means the module's built-in model (``MODEL_PATH``). An ``inference``
key that is absent keeps the module's environment setting. ``capture`` is validated by
``classifier.quality.capture_settings``; absent or null captures nothing. Unknown keys are refused rather
than ignored: a misspelt ``"confidence_treshold"`` must not silently change nothing.
docs/module-twin.md is the published form of this schema.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from classifier.errors import UpdateErrorCode
from classifier.providers import PROVIDER_NAMES, ProviderPolicy
from classifier.quality.capture_settings import CAPTURE_OFF, CaptureSettings, parse_capture

SCHEMA_VERSION = "1.0"
# Every key of the model section. A writer sends all of them, null for the ones it does not
# set: the twin merges patches, so a key it left out would keep the previous model's value.
MODEL_KEYS = ("name", "version", "url", "sha256", "size", "signature")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URL_SCHEMES = ("https", "http", "file")
_MAX_TEXT = 256
_MAX_URL = 8192

T = TypeVar("T")


class DesiredPropertiesError(ValueError):
    """The desired document is invalid; ``problems`` names every one of them."""

    code = UpdateErrorCode.INVALID_DESIRED

    def __init__(self, version: int | None, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.version = version
        self.problems = problems


@dataclass(frozen=True)
class ModelSource:
    url: str
    sha256: str  # lower-case hex
    name: str | None = None
    version: str | None = None
    size: int | None = None  # bytes, when the operator states it: enforced exactly
    signature: bytes | None = None  # ed25519 over the file's digest (see signing.py)

    def label(self) -> str:
        named = " ".join(p for p in (self.name, self.version) if p)
        return f"{named} ({self.sha256[:12]})" if named else self.sha256[:12]

    def describe(self) -> dict[str, Any]:
        """As reported: never the URL, whose SAS query is a secret."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class InferenceSettings:
    """Each field None means: keep the module's environment setting."""

    top_k: int | None = None
    confidence_threshold: float | None = None
    max_batch: int | None = None
    max_wait_ms: float | None = None
    provider: str | None = None
    provider_policy: ProviderPolicy | None = None

    def live_changes(self) -> dict[str, Any]:
        """The pipeline settings that apply from the next batch, without a reload."""
        names = ("top_k", "confidence_threshold", "max_batch", "max_wait_ms")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


@dataclass(frozen=True)
class DesiredProperties:
    version: int  # the twin's $version of this document
    model: ModelSource | None = None
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    capture: CaptureSettings = CAPTURE_OFF

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> DesiredProperties:
        """Validates the whole document; raises ``DesiredPropertiesError`` naming every problem."""
        problems: list[str] = []
        raw_version = doc.get("$version")
        version = raw_version if _is_int(raw_version) else None
        if version is None:
            problems.append("$version is missing or not an integer")
        schema = doc.get("schemaVersion", SCHEMA_VERSION)
        if not isinstance(schema, str) or schema.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            problems.append(f"schemaVersion {schema!r} is not supported (this module reads 1.x)")
        known = {"schemaVersion", "model", "inference", "capture"}
        unknown = sorted(k for k in doc if not k.startswith("$") and k not in known)
        if unknown:
            problems.append(f"unknown keys {unknown} (known: {sorted(known)})")
        model = _parse_model(doc.get("model"), problems)
        inference = _parse_inference(doc.get("inference"), problems)
        capture = parse_capture(doc.get("capture"), problems)
        if problems:
            raise DesiredPropertiesError(version, problems)
        assert version is not None
        return cls(version, model, inference, capture)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any, where: str, allowed: set[str], problems: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object")
        return {}
    unknown = sorted(k for k in value if k not in allowed)
    if unknown:
        problems.append(f"{where} has unknown keys {unknown} (known: {sorted(allowed)})")
    return value


def _parse_model(value: Any, problems: list[str]) -> ModelSource | None:
    if value is None:
        return None
    doc = _object(value, "model", set(MODEL_KEYS), problems)
    if not doc:
        return None
    before = len(problems)
    url = doc.get("url")
    if not isinstance(url, str) or not url:
        problems.append("model.url is required")
    elif len(url) > _MAX_URL:
        problems.append(f"model.url is longer than {_MAX_URL} characters")
    elif urlsplit(url).scheme.lower() not in _URL_SCHEMES:
        problems.append(f"model.url scheme must be one of {', '.join(_URL_SCHEMES)}")
    sha = doc.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        problems.append("model.sha256 must be 64 hexadecimal characters")
    size = doc.get("size")
    if size is not None and (not _is_int(size) or size <= 0):
        problems.append("model.size must be a positive integer (bytes)")
    texts = {k: doc.get(k) for k in ("name", "version")}
    for key, text in texts.items():
        if text is not None and (not isinstance(text, str) or not 0 < len(text) <= _MAX_TEXT):
            problems.append(f"model.{key} must be a string of 1..{_MAX_TEXT} characters")
    signature = _signature(doc.get("signature"), problems)
    if len(problems) > before:
        return None
    assert isinstance(url, str)
    assert isinstance(sha, str)
    return ModelSource(url, sha.lower(), texts["name"], texts["version"], size, signature)


def _signature(value: Any, problems: list[str]) -> bytes | None:
    if value is None:
        return None
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        problems.append("model.signature must be a base64 ed25519 signature (64 bytes)")
        return None
    return raw


def _parse_inference(value: Any, problems: list[str]) -> InferenceSettings:
    if value is None:
        return InferenceSettings()
    allowed = {"top_k", "confidence_threshold", "max_batch", "max_wait_ms"}
    allowed |= {"provider", "provider_policy"}
    doc = _object(value, "inference", allowed, problems)

    def get(key: str, parse: Callable[[Any], T], check: Callable[[T], bool], rule: str) -> T | None:
        if doc.get(key) is None:
            return None
        try:
            parsed = parse(doc[key])
        except (TypeError, ValueError):
            problems.append(f"inference.{key} must be {rule}")
            return None
        if not check(parsed):
            problems.append(f"inference.{key} must be {rule}")
            return None
        return parsed

    return InferenceSettings(
        top_k=get("top_k", _strict_int, lambda v: 1 <= v <= 1000, "an integer in 1..1000"),
        confidence_threshold=get(
            "confidence_threshold", _number, lambda v: 0 <= v <= 1, "a number in 0..1"
        ),
        max_batch=get("max_batch", _strict_int, lambda v: 1 <= v <= 1024, "an integer in 1..1024"),
        max_wait_ms=get(
            "max_wait_ms", _number, lambda v: 0 <= v <= 10_000, "a number of ms in 0..10000"
        ),
        provider=get(
            "provider",
            _text,
            lambda v: v in ("auto", *PROVIDER_NAMES),
            f"one of auto, {', '.join(PROVIDER_NAMES)}",
        ),
        provider_policy=get(
            "provider_policy", ProviderPolicy, lambda v: True, "one of auto, prefer, require"
        ),
    )


def _strict_int(value: Any) -> int:
    if not _is_int(value):
        raise TypeError("not an integer")
    result: int = value
    return result


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError("not a finite number")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value.lower()
