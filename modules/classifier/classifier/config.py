"""Module settings, read once from the environment at start-up and validated as a whole.

Every variable is optional; docs/configuration.md lists them. A bad value stops start-up with
one error naming every problem, rather than running with a surprise default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from classifier.claim_checks import DEFAULT_CLAIM_CHECK_DIR, ClaimCheckSettings
from classifier.decode_limits import FrameLimits
from classifier.decoding.choice import DEFAULT_NICE
from classifier.engine import EngineOptions
from classifier.errors import ConfigError
from classifier.frame_queue import OverflowPolicy
from classifier.inference_lanes import auto_lanes
from classifier.intake import DEFAULT_MAX_ENTRIES
from classifier.model_update import DownloadPolicy, UpdateSettings
from classifier.model_update.signing import parse_public_key
from classifier.pipeline import PipelineConfig
from classifier.providers import PROVIDER_NAMES, ProviderPolicy
from classifier.quality import QualityConfig
from edge_module.env import EnvReader, boolean, choice, module_log_level, positive
from edge_module.hub_settings import HubSettings
from edge_module.outbox import OutboxPolicy

# modules/classifier/models: next to the package in the source tree and in the image.
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "seed-cnn-synth10.onnx"
# The module image mounts a volume here (see deployment.template.json).
DEFAULT_CACHE_DIR = Path("/var/lib/classifier/models")


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
    cache_dir: Path | None = DEFAULT_CACHE_DIR  # None: model updates off
    updates: UpdateSettings = field(default_factory=lambda: UpdateSettings(DownloadPolicy()))
    probation_frames: int = 100
    probation_s: float = 300.0
    hub: HubSettings = field(default_factory=HubSettings)
    claim_checks: ClaimCheckSettings = field(default_factory=ClaimCheckSettings)
    quality: QualityConfig = field(default_factory=QualityConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModuleConfig:
        reader = EnvReader(env)
        get = reader.get
        provider = get("EXECUTION_PROVIDER", choice(("auto", *PROVIDER_NAMES)), "auto")
        policy = get("PROVIDER_POLICY", ProviderPolicy, ProviderPolicy.AUTO)
        if provider != "auto" and policy is ProviderPolicy.AUTO:
            policy = ProviderPolicy.PREFER
        intra_op_threads = get("INTRA_OP_THREADS", int, 0, lambda v: 0 <= v <= 256)
        lanes = get("INFERENCE_LANES", _auto_or_int, None, lambda v: v is None or 1 <= v <= 64)
        engine = EngineOptions(
            provider=provider,
            policy=policy,
            intra_op_threads=intra_op_threads,
            lanes=lanes,
            inter_op_threads=get("INTER_OP_THREADS", int, 1, lambda v: 1 <= v <= 64),
            spin=get("ORT_THREAD_SPINNING", boolean, False),
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
            decode_processes=get(
                "DECODE_PROCESSES", _auto_or_int, None, lambda v: v is None or 0 <= v <= 256
            ),
            decode_nice=get("DECODE_NICE", int, DEFAULT_NICE, lambda v: 0 <= v <= 19),
            emit_concurrency=get(
                "EMIT_CONCURRENCY", int, PipelineConfig.emit_concurrency, lambda v: 1 <= v <= 256
            ),
            # Lane stages for the models that get lanes; a model that does not runs in one.
            inference_lanes=auto_lanes(intra_op_threads) if lanes is None else lanes,
            limits=limits,
            max_request_entries=get(
                "MAX_REQUEST_ENTRIES", int, DEFAULT_MAX_ENTRIES, lambda v: 1 <= v <= 10_000
            ),
            passthrough_properties=tuple(
                name.strip()
                for name in (env.get("PASSTHROUGH_PROPERTIES") or "").split(",")
                if name.strip()
            ),
        )
        updates = _update_settings(reader)
        cache_dir = env.get("MODEL_CACHE_DIR", str(DEFAULT_CACHE_DIR)).strip()
        config = cls(
            cache_dir=Path(cache_dir) if cache_dir and cache_dir.lower() != "off" else None,
            updates=updates,
            probation_frames=get("MODEL_PROBATION_FRAMES", int, 100, lambda v: 0 <= v <= 10**6),
            probation_s=get("MODEL_PROBATION_S", float, 300.0, lambda v: 0 <= v <= 86_400),
            model_path=Path(env.get("MODEL_PATH") or DEFAULT_MODEL),
            engine=engine,
            pipeline=pipeline,
            input_name=env.get("FRAMES_INPUT") or "frames",
            predictions_output=env.get("PREDICTIONS_OUTPUT") or "predictions",
            errors_output=env.get("ERRORS_OUTPUT") or "errors",
            shutdown_grace_s=get("SHUTDOWN_GRACE_S", float, 5.0, lambda v: 0 <= v <= 300),
            log_level=module_log_level(reader),
            hub=_hub_settings(reader, pipeline),
            claim_checks=_claim_check_settings(reader),
            quality=QualityConfig.from_env(reader),
        )
        if reader.problems:
            raise ConfigError("invalid configuration: " + "; ".join(reader.problems))
        return config


def _auto_or_int(text: str) -> int | None:
    return None if text.lower() == "auto" else int(text)


def _update_settings(reader: EnvReader) -> UpdateSettings:
    env, get, problems = reader.env, reader.get, reader.problems
    base = DownloadPolicy()
    ca = env.get("MODEL_DOWNLOAD_CA_FILE", "").strip()
    if ca and not Path(ca).is_file():
        problems.append(f"MODEL_DOWNLOAD_CA_FILE={ca!r} is not a file")
    key_text = env.get("MODEL_SIGNING_PUBLIC_KEY", "").strip()
    key = None
    if key_text:
        try:
            key = parse_public_key(key_text)
        except ConfigError as e:
            problems.append(str(e))
    policy = DownloadPolicy(
        allow_http=get("MODEL_ALLOW_HTTP", boolean, False),
        max_bytes=get("MODEL_MAX_BYTES", int, base.max_bytes, positive),
        min_free_bytes=get("MODEL_MIN_FREE_BYTES", int, base.min_free_bytes, lambda v: v >= 0),
        connect_timeout_s=get("MODEL_CONNECT_TIMEOUT_S", float, base.connect_timeout_s, positive),
        read_timeout_s=get("MODEL_READ_TIMEOUT_S", float, base.read_timeout_s, positive),
        attempts=get("MODEL_DOWNLOAD_ATTEMPTS", int, base.attempts, lambda v: 1 <= v <= 100),
        backoff_s=get("MODEL_DOWNLOAD_BACKOFF_S", float, base.backoff_s, lambda v: v >= 0),
        ca_file=Path(ca) if ca else None,
    )
    return UpdateSettings(
        download=policy,
        signing_key=key,
        retry_s=get("MODEL_RETRY_S", float, 60.0, positive),
    )


def _hub_settings(reader: EnvReader, pipeline: PipelineConfig) -> HubSettings:
    # Batch scoring (nothing dropped from the queue) must not drop outcomes either.
    outbox_default = (
        OutboxPolicy.BLOCK
        if pipeline.overflow is OverflowPolicy.BLOCK
        else OutboxPolicy.DROP_OLDEST
    )
    return HubSettings.from_env(reader, outbox_default, pipeline.emit_concurrency)


def _claim_check_settings(reader: EnvReader) -> ClaimCheckSettings:
    folder = reader.text("CLAIM_CHECK_DIR", str(DEFAULT_CLAIM_CHECK_DIR))
    release = reader.get("CLAIM_CHECK_RELEASE", choice(("delete", "keep")), "delete")
    return ClaimCheckSettings(
        folder=None if folder.lower() == "off" else Path(folder), release=release == "delete"
    )
