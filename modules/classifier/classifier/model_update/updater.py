"""Reconciles the module with its twin's desired properties: settings now, models by update.

Every desired document (a patch, the full twin after a reconnect, or the GET at start-up) goes
through ``reconcile``. Documents with a ``$version`` not above the last one seen are stale and
ignored. A valid one applies its live settings at once and, when it names a model other than
the one serving (or other providers), starts one update job; a newer document cancels a job
that is still downloading. A job is: download (skipped when the cache already holds the file)
-> verify size, sha256 and signature -> admit to the cache -> load, check, warm up and
self-test off the event loop -> swap between two batches. The model that served before keeps
serving until the swap, and stays loaded on probation after it.

A failed model is remembered with the desired version that asked for it (in the cache's
SQLite state), so the full-desired resync after every reconnect neither re-downloads the
active model nor retries a failed one; only a new desired version does. Transient failures
(network, timeouts, truncation, disk) are retried later with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from classifier.engine import EngineOptions, file_sha256
from classifier.errors import ModelUpdateError, UpdateErrorCode
from classifier.model_store import ServingModel
from classifier.model_update.cache import Failure, ModelCache
from classifier.model_update.candidate import load_candidate
from classifier.model_update.desired import (
    DesiredProperties,
    DesiredPropertiesError,
    InferenceSettings,
    ModelSource,
)
from classifier.model_update.download import DownloadCancelledError, DownloadPolicy, download
from classifier.model_update.report import (
    ProgressThrottle,
    ReportSender,
    Send,
    UpdateState,
    UpdateStatus,
)
from classifier.model_update.signing import check_signature
from classifier.model_update.startup import Startup
from classifier.pipeline import Pipeline, PipelineConfig
from classifier.providers import ProviderPolicy

log = logging.getLogger(__name__)

_TRANSIENT = {
    UpdateErrorCode.DOWNLOAD_FAILED,
    UpdateErrorCode.DOWNLOAD_TIMEOUT,
    UpdateErrorCode.TRUNCATED,
    UpdateErrorCode.INSUFFICIENT_DISK,
}


@dataclass(frozen=True)
class UpdateSettings:
    download: DownloadPolicy
    signing_key: Ed25519PublicKey | None = None
    retry_s: float = 60.0  # first retry of a transient failure; doubles up to retry_max_s
    retry_max_s: float = 3600.0


@dataclass(frozen=True)
class _Target:
    source: ModelSource | None  # None: the built-in model
    options: EngineOptions
    desired_version: int

    @property
    def sha256(self) -> str | None:
        return self.source.sha256 if self.source else None


class ModelUpdater:
    def __init__(
        self,
        pipeline: Pipeline,
        startup: Startup,
        settings: UpdateSettings,
        env_engine: EngineOptions,
        send: Send,
    ) -> None:
        self.pipeline = pipeline
        self.store = pipeline.store
        self.startup = startup
        self.cache = startup.cache
        self.settings = settings
        self._env_engine = env_engine
        self._env_pipeline: PipelineConfig = pipeline.config
        self.reporter = ReportSender(send)
        self.status = UpdateStatus()
        self.engine_options = env_engine
        self._seen_version = -1
        self._last_desired: dict[str, Any] | None = None
        self._job: asyncio.Task[None] | None = None
        self._job_target: _Target | None = None
        self._cancel = threading.Event()
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay_s = settings.retry_s
        self.store.on_promoted = self._promoted
        self.store.on_fallback = self._fell_back
        # Other sections of an accepted document (capture): each returns its reported part.
        self.on_accepted: list[Callable[[DesiredProperties], dict[str, Any]]] = []

    # -- desired properties -----------------------------------------------------------------

    async def reconcile(self, doc: dict[str, Any], *, force: bool = False) -> None:
        """Applies a full desired document. Never raises: problems are reported."""
        version = doc.get("$version")
        if isinstance(version, int) and version <= self._seen_version and not force:
            log.debug(
                "desired $version %s is not newer than %s: ignored", version, self._seen_version
            )
            return
        try:
            desired = DesiredProperties.parse(doc)
        except DesiredPropertiesError as e:
            log.error("desired properties rejected, nothing changed: %s", e)
            self._seen_version = max(self._seen_version, e.version or -1)
            await self._report({"desired": _ack(e.version, "rejected", str(e))})
            return
        self._seen_version = desired.version
        self._last_desired = doc
        self._cancel_retry()
        applied = self._apply_live(desired.inference)
        for apply_section in self.on_accepted:
            applied |= apply_section(desired)
        await self._report({"desired": _ack(desired.version, "accepted", None)} | applied)
        await self._reconcile_model(
            _Target(desired.model, self._options_for(desired.inference), desired.version)
        )

    def _apply_live(self, inference: InferenceSettings) -> dict[str, Any]:
        env = self._env_pipeline
        defaults = {
            "top_k": env.top_k,
            "confidence_threshold": env.confidence_threshold,
            "max_batch": env.max_batch,
            "max_wait_ms": env.max_wait_ms,
        }
        config = self.pipeline.apply_settings(**(defaults | inference.live_changes()))
        return {"inference": self._inference_report(config)}

    def _inference_report(self, config: PipelineConfig) -> dict[str, Any]:
        return {
            "top_k": config.top_k,
            "confidence_threshold": config.confidence_threshold,
            "max_batch": config.max_batch,
            "max_wait_ms": config.max_wait_ms,
            "provider": self.engine_options.provider,
            "provider_policy": self.engine_options.policy.value,
        }

    def _options_for(self, inference: InferenceSettings) -> EngineOptions:
        provider = inference.provider or self._env_engine.provider
        policy = inference.provider_policy or (
            self._env_engine.policy if inference.provider is None else ProviderPolicy.AUTO
        )
        if provider != "auto" and policy is ProviderPolicy.AUTO:
            policy = ProviderPolicy.PREFER
        return replace(self._env_engine, provider=provider, policy=policy)

    async def _reconcile_model(self, target: _Target) -> None:
        current = self.store.current
        wanted_sha = target.sha256 or self.startup.builtin_sha256
        if current.info.sha256 == wanted_sha and target.options == self.engine_options:
            # Already serving it (a resync after a reconnect, or a restart): nothing to fetch.
            self._stop_job()
            await self._move(UpdateState.ACTIVE, target, probation=self.store.on_probation)
            return
        failure = self.cache.failure() if self.cache else None
        if (
            failure is not None
            and failure.desired_version == target.desired_version
            and failure.sha256 in (target.sha256, wanted_sha)
        ):
            # Already tried for this desired version: report it again, do not retry.
            rolled = failure.code in _ROLLBACK_CODES
            state = UpdateState.ROLLED_BACK if rolled else UpdateState.FAILED
            error = {"code": failure.code, "reason": failure.reason}
            await self._move(state, target, error=error)
            return
        if self._job is not None and self._job_target == target:
            return
        self._stop_job()
        self._cancel = threading.Event()
        self._job_target = target
        self._job = asyncio.create_task(self._run_job(target, self._cancel), name="model-update")

    def _stop_job(self) -> None:
        self._cancel.set()
        if self._job is not None and not self._job.done():
            self._job.cancel()
        self._job = None
        self._job_target = None

    # -- the update job ---------------------------------------------------------------------

    async def _run_job(self, target: _Target, cancel: threading.Event) -> None:
        try:
            model = await self._prepare(target, cancel)
        except (asyncio.CancelledError, DownloadCancelledError):
            log.info("model update to %s cancelled by a newer desired document", _label(target))
            return
        except ModelUpdateError as e:
            await self._failed(target, e)
            return
        except Exception as e:  # a bug must not kill the module; it fails this update only
            log.exception("model update failed unexpectedly")
            await self._failed(target, ModelUpdateError(UpdateErrorCode.MODEL_INVALID, repr(e)))
            return
        finally:
            if self._job is asyncio.current_task():
                self._job = None
                self._job_target = None
        self.store.swap(model)
        self.engine_options = target.options
        self._retry_delay_s = self.settings.retry_s
        self.pipeline.metrics.count("model_swaps")
        await self._report({"inference": self._inference_report(self.pipeline.config)})
        await self._move(UpdateState.ACTIVE, target, probation=self.store.on_probation)

    async def _prepare(self, target: _Target, cancel: threading.Event) -> ServingModel:
        if target.source is None:
            path, source = self.startup.builtin_path, "builtin"
        else:
            path = await self._fetch(target, target.source, cancel)
            source = "download"
        if self.cache is not None and target.source is not None:
            # The crash-loop mark is on disk before the load starts, and before ``loading`` is
            # reported: a process that dies loading leaves it for the next start to find.
            await asyncio.to_thread(
                self.cache.set_candidate, target.source.sha256, target.desired_version
            )
        await self._move(UpdateState.LOADING, target)
        try:
            return await asyncio.to_thread(load_candidate, path, target.options, source)
        except BaseException:
            if self.cache is not None and target.source is not None:
                await asyncio.to_thread(self.cache.set_candidate, None)
            raise

    async def _fetch(self, target: _Target, source: ModelSource, cancel: threading.Event) -> Path:
        cache = self.cache
        if cache is None:
            raise ModelUpdateError(
                UpdateErrorCode.CACHE_UNAVAILABLE, "no usable MODEL_CACHE_DIR: cannot stage models"
            )
        cached = await asyncio.to_thread(_verified_or_none, cache, source.sha256)
        if cached is not None:
            log.info("model %s is already in the cache: no download", source.label())
            return cached
        staged = cache.staging_path(source.sha256)
        await asyncio.to_thread(cache.set_downloading, source.sha256)
        await self._move(UpdateState.DOWNLOADING, target, received_bytes=0, total_bytes=source.size)
        loop = asyncio.get_running_loop()
        throttle = ProgressThrottle()

        def progress(received: int, total: int | None) -> None:
            if throttle.due(received, total):
                loop.call_soon_threadsafe(self._progress, target, received, total)

        size = await asyncio.to_thread(
            download, source.url, staged, self.settings.download, source.size, progress, cancel
        )
        await self._move(UpdateState.VERIFYING, target)
        try:
            if source.size is not None and size != source.size:
                raise ModelUpdateError(
                    UpdateErrorCode.SIZE_MISMATCH,
                    f"downloaded {size} bytes; model.size says {source.size}",
                )
            digest = await asyncio.to_thread(file_sha256, staged)
            if digest != source.sha256:
                raise ModelUpdateError(
                    UpdateErrorCode.SHA256_MISMATCH,
                    f"the file's sha256 is {digest}, not {source.sha256}",
                )
            check_signature(self.settings.signing_key, digest, source.signature)
        except ModelUpdateError:
            staged.unlink(missing_ok=True)  # never keep unverified bytes
            raise
        finally:
            await asyncio.to_thread(cache.set_downloading, None)
        return await asyncio.to_thread(cache.admit, staged, digest, source.name, source.version)

    def _progress(self, target: _Target, received: int, total: int | None) -> None:
        if self._job_target != target or self.status.state is not UpdateState.DOWNLOADING:
            return
        status = self.status.moved(
            state=UpdateState.DOWNLOADING, received_bytes=received, total_bytes=total
        )
        self.status = status
        self.reporter.post({"modelUpdate": status.to_dict()})

    async def _failed(self, target: _Target, error: ModelUpdateError) -> None:
        log.error("model update to %s failed: %s", _label(target), error)
        self.pipeline.metrics.count(f"model_update_failures.{error.code}")
        if self.cache is not None:
            failure = Failure(target.desired_version, target.sha256, error.code.value, error.reason)
            await asyncio.to_thread(self.cache.set_failure, failure)
        await self._move(UpdateState.FAILED, target, error=error.to_dict())
        if error.code in _TRANSIENT:
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = self._retry_delay_s
        self._retry_delay_s = min(self._retry_delay_s * 2, self.settings.retry_max_s)
        log.info("retrying the model update in %.0f s", delay)
        loop = asyncio.get_running_loop()
        self._retry = loop.call_later(delay, lambda: asyncio.ensure_future(self._retry_now()))

    async def _retry_now(self) -> None:
        self._retry = None
        if self.cache is not None:
            await asyncio.to_thread(self.cache.set_failure, None)
        if self._last_desired is not None:
            await self.reconcile(self._last_desired, force=True)

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    # -- probation outcomes (called by the store, on the event loop) ------------------------

    def _promoted(self, model: ServingModel, released: ServingModel | None) -> None:
        if self.cache is not None:
            previous = released.info.sha256 if released else None
            self.cache.set_roles(active=model.info.sha256, previous=previous, candidate=None)
        if self.status.state is UpdateState.ACTIVE:
            self.status = self.status.moved(state=UpdateState.ACTIVE, probation=False)
            self.reporter.post({"modelUpdate": self.status.to_dict()})

    def _fell_back(self, failed: ServingModel, restored: ServingModel, reason: str) -> None:
        self.pipeline.metrics.count("model_rollbacks")
        error = ModelUpdateError(UpdateErrorCode.FAILED_ON_LIVE_FRAMES, reason)
        failure = Failure(self._seen_version, failed.info.sha256, error.code.value, reason)
        if self.cache is not None:
            self.cache.set_failure(failure)
            self.cache.set_candidate(None)
        self.status = self.status.moved(state=UpdateState.ROLLED_BACK, error=error.to_dict())
        self.reporter.post(self.reported_models())

    # -- reporting --------------------------------------------------------------------------

    async def _move(self, state: UpdateState, target: _Target, **fields: Any) -> None:
        target_doc = target.source.describe() if target.source else None
        self.status = self.status.moved(
            state=state, desired_version=target.desired_version, target=target_doc, **fields
        )
        await self._report(self.reported_models())

    def reported_models(self) -> dict[str, Any]:
        previous = self.store.previous
        return {
            "model": self.store.current.describe(),
            "previousModel": previous.describe() if previous else self._cached_previous(),
            "modelUpdate": self.status.to_dict(),
        }

    def _cached_previous(self) -> dict[str, Any] | None:
        sha = self.cache.role("previous") if self.cache else None
        if not sha:
            return None
        entry = self.cache.describe(sha) if self.cache else None
        return {
            "name": entry.name if entry else None,
            "version": entry.version if entry else None,
            "sha256": sha,
            "builtin": sha == self.startup.builtin_sha256,
            "loaded": False,
        }

    async def _report(self, patch: dict[str, Any]) -> None:
        await self.reporter.report(patch)

    async def report_startup(self) -> None:
        """After connecting: the models in use, and what went wrong choosing them."""
        patch = self.reported_models() | {"inference": self._inference_report(self.pipeline.config)}
        if self.startup.problems:
            problem = self.startup.problems[-1]
            self.status = self.status.moved(state=UpdateState.FAILED, error=problem.to_dict())
            patch["modelUpdate"] = self.status.to_dict()
        await self._report(patch)

    # -- direct methods ---------------------------------------------------------------------

    async def rollback(self) -> dict[str, Any]:
        """Serves the previous model again (reloaded from the cache if it was released).

        The model rolled back from is remembered as failed for the current desired version,
        so the next resync does not re-apply it; a new desired version does.
        """
        previous = self.store.previous
        if previous is None:
            sha = self.cache.role("previous") if self.cache else None
            if not sha:
                raise ModelUpdateError(UpdateErrorCode.ROLLED_BACK, "there is no previous model")
            previous = await asyncio.to_thread(self._load_known, sha)
        self._stop_job()
        rolled_from = self.store.restore(previous)
        reason = "rollback requested through the rollback method"
        if self.cache is not None:
            cache = self.cache
            await asyncio.to_thread(
                cache.set_roles,
                active=previous.info.sha256,
                previous=rolled_from.info.sha256,
                candidate=None,
            )
            failure = Failure(
                self._seen_version,
                rolled_from.info.sha256,
                UpdateErrorCode.ROLLED_BACK.value,
                reason,
            )
            await asyncio.to_thread(cache.set_failure, failure)
        self.pipeline.metrics.count("model_rollbacks")
        error = {"code": UpdateErrorCode.ROLLED_BACK.value, "reason": reason}
        self.status = self.status.moved(state=UpdateState.ROLLED_BACK, error=error)
        await self._report(self.reported_models())
        return {"active": previous.describe(), "rolled_back_from": rolled_from.describe()}

    def _load_known(self, sha256: str) -> ServingModel:
        if sha256 == self.startup.builtin_sha256:
            return load_candidate(self.startup.builtin_path, self.engine_options, "builtin")
        path = self.cache.verified_path(sha256) if self.cache else None
        if path is None:
            raise ModelUpdateError(UpdateErrorCode.CACHE_CORRUPT, f"model {sha256[:12]} is gone")
        return load_candidate(path, self.engine_options, "cache")

    def describe(self) -> dict[str, Any]:
        """For the get_model method: the models, the update state and the cache."""
        entries = self.cache.entries() if self.cache else []
        return self.reported_models() | {
            "cache": {
                "dir": str(self.cache.root) if self.cache else None,
                "models": [vars(e) for e in entries],
            }
        }

    async def close(self) -> None:
        """On a clean stop: a model that served without failing until now is kept."""
        self._cancel_retry()
        self._stop_job()
        if self.store.on_probation:
            self.store.promote()
        await self.reporter.close()


_ROLLBACK_CODES = {UpdateErrorCode.FAILED_ON_LIVE_FRAMES.value, UpdateErrorCode.ROLLED_BACK.value}


def _ack(version: int | None, status: str, reason: str | None) -> dict[str, Any]:
    return {"version": version, "status": status, "reason": reason}


def _label(target: _Target) -> str:
    return target.source.label() if target.source else "the built-in model"


def _verified_or_none(cache: ModelCache, sha256: str) -> Path | None:
    try:
        return cache.verified_path(sha256)
    except ModelUpdateError as e:  # corrupted: removed, so download it again
        log.warning("%s", e)
        return None
