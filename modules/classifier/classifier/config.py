"""Module settings, read once from the environment at start-up and validated as a whole.

Every variable is optional; docs/configuration.md lists them. A bad value stops start-up with
one error naming every problem, rather than running with a surprise default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from classifier.decode import FrameLimits
from classifier.engine import EngineOptions
from classifier.errors import ConfigError
from classifier.frame_queue import OverflowPolicy
from classifier.pipeline import PipelineConfig
from classifier.providers import PROVIDER_NAMES, ProviderPolicy

# modules/classifier/models: next to the package in the source tree and in the image.
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "seed-cnn-synth10.onnx"

T = TypeVar("T")


@dataclass(frozen=True)
class ModuleConfig:
    model_path: Path
    engine: EngineOptions
    pipeline: PipelineConfig
    input_name: str = "frames"
    predictions_output: str = "predictions"
    errors_output: str = "errors"
    shutdown_grace_s: float = 5.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModuleConfig:
        problems: list[str] = []

        def get(
            name: str,
            parse: Callable[[str], T],
            default: T,
            check: Callable[[T], bool] | None = None,
        ) -> T:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = parse(raw.strip())
            except ValueError as e:
                problems.append(f"{name}={raw!r}: {e}")
                return default
            if check is not None and not check(value):
                problems.append(f"{name}={raw!r} is out of range")
                return default
            return value

        positive = _positive
        provider = get("EXECUTION_PROVIDER", _choice(("auto", *PROVIDER_NAMES)), "auto")
        policy = get("PROVIDER_POLICY", ProviderPolicy, ProviderPolicy.AUTO)
        if provider != "auto" and policy is ProviderPolicy.AUTO:
            policy = ProviderPolicy.PREFER
        engine = EngineOptions(
            provider=provider,
            policy=policy,
            intra_op_threads=get("INTRA_OP_THREADS", int, 0, lambda v: 0 <= v <= 256),
            inter_op_threads=get("INTER_OP_THREADS", int, 1, lambda v: 1 <= v <= 64),
        )
        limits = FrameLimits(
            max_frame_bytes=get("MAX_FRAME_BYTES", int, FrameLimits.max_frame_bytes, positive),
            max_pixels=get("MAX_PIXELS", int, FrameLimits.max_pixels, positive),
            max_side=get("MAX_SIDE", int, FrameLimits.max_side, positive),
        )
        pipeline = PipelineConfig(
            max_batch=get("MAX_BATCH", int, PipelineConfig.max_batch, lambda v: 1 <= v <= 1024),
            max_wait_ms=get(
                "MAX_WAIT_MS", float, PipelineConfig.max_wait_ms, lambda v: 0 <= v <= 10_000
            ),
            queue_capacity=get("QUEUE_CAPACITY", int, PipelineConfig.queue_capacity, positive),
            overflow=get("OVERFLOW_POLICY", OverflowPolicy, PipelineConfig.overflow),
            top_k=get("TOP_K", int, PipelineConfig.top_k, lambda v: 1 <= v <= 1000),
            confidence_threshold=get(
                "CONFIDENCE_THRESHOLD",
                float,
                PipelineConfig.confidence_threshold,
                lambda v: 0 <= v <= 1,
            ),
            decode_workers=get(
                "DECODE_WORKERS", int, PipelineConfig.decode_workers, lambda v: 1 <= v <= 64
            ),
            emit_concurrency=get(
                "EMIT_CONCURRENCY", int, PipelineConfig.emit_concurrency, lambda v: 1 <= v <= 256
            ),
            limits=limits,
            passthrough_properties=tuple(
                name.strip()
                for name in (env.get("PASSTHROUGH_PROPERTIES") or "").split(",")
                if name.strip()
            ),
        )
        config = cls(
            model_path=Path(env.get("MODEL_PATH") or DEFAULT_MODEL),
            engine=engine,
            pipeline=pipeline,
            input_name=env.get("FRAMES_INPUT") or "frames",
            predictions_output=env.get("PREDICTIONS_OUTPUT") or "predictions",
            errors_output=env.get("ERRORS_OUTPUT") or "errors",
            shutdown_grace_s=get("SHUTDOWN_GRACE_S", float, 5.0, lambda v: 0 <= v <= 300),
            log_level=get(
                "LOG_LEVEL", _log_level, _log_level(env.get("RuntimeLogLevel") or "info")
            ),
        )
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))
        return config


def _positive(value: Any) -> bool:
    return bool(value > 0)


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _log_level(raw: str) -> str:
    # edgeAgent passes RuntimeLogLevel in lower case (info, debug, warning, error).
    value = raw.strip().upper()
    aliases = {"WARN": "WARNING", "VERBOSE": "DEBUG", "FATAL": "CRITICAL"}
    value = aliases.get(value, value)
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("expected debug, info, warning or error")
    return value
