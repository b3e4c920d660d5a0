"""Which model the module starts on: the last good one from the cache, else the built-in one.

Runs before the module connects, so it needs no network: a device that restarts while its
storage account is unreachable starts on the model it ran before, re-verified by hash.

- A candidate still marked in the cache means the previous process died while loading or
  trying it (a native crash in ONNX Runtime, an out-of-memory kill): that model is recorded as
  failed (``crashed_while_loading``) instead of being tried again, so a bad model cannot
  crash-loop the module until edgeAgent gives up.
- A cached file whose digest changed on disk is removed and not used (``cache_corrupt``); the
  previous model, then the built-in one, serves instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from classifier.engine import EngineOptions, InferenceEngine, file_sha256
from classifier.errors import ModelUpdateError, UpdateErrorCode
from classifier.model_store import ServingModel
from classifier.model_update.cache import Failure, ModelCache
from classifier.model_update.candidate import load_candidate

log = logging.getLogger(__name__)


@dataclass
class Startup:
    model: ServingModel
    cache: ModelCache | None
    builtin_path: Path
    builtin_sha256: str
    # Problems found while choosing, reported once the module is connected.
    problems: list[ModelUpdateError] = field(default_factory=list)


def start_model(builtin: Path, cache_dir: Path | None, options: EngineOptions) -> Startup:
    """Blocking (file hashing, session creation): call before the event loop runs frames."""
    builtin_sha = file_sha256(builtin) if builtin.is_file() else ""
    problems: list[ModelUpdateError] = []
    cache: ModelCache | None = None
    if cache_dir is not None:
        try:
            cache = ModelCache.open(cache_dir)
        except ModelUpdateError as e:
            log.error("%s: model updates are off until it is fixed", e)
            problems.append(e)
    if cache is not None:
        _record_crashed_candidate(cache)
        for role in ("active", "previous"):
            sha = cache.role(role)
            if not sha:
                continue
            if sha == builtin_sha:
                break
            try:
                path = cache.verified_path(sha)
                if path is None:
                    raise ModelUpdateError(
                        UpdateErrorCode.CACHE_CORRUPT, f"the {role} model {sha[:12]} is missing"
                    )
                model = load_candidate(path, options, source="cache")
            except ModelUpdateError as e:
                log.error("cannot start on the cached %s model: %s", role, e)
                problems.append(e)
                cache.set_roles(**{role: None})
                continue
            log.info("starting on the cached %s model %s", role, sha[:12])
            if role == "previous":
                cache.set_roles(active=sha, previous=None)
            return Startup(model, cache, builtin, builtin_sha, problems)
    engine = InferenceEngine.from_path(builtin, options)
    engine.warm_up()
    return Startup(
        ServingModel.from_engine(engine, "builtin"), cache, builtin, builtin_sha, problems
    )


def _record_crashed_candidate(cache: ModelCache) -> None:
    sha = cache.role("candidate")
    if not sha:
        return
    version = cache.candidate_version()
    log.error("the module stopped while trying model %s: it will not be tried again", sha[:12])
    cache.set_failure(
        Failure(
            desired_version=version if version is not None else -1,
            sha256=sha,
            code=UpdateErrorCode.CRASHED_WHILE_LOADING.value,
            reason="the module process ended while loading or trying this model",
        )
    )
    cache.set_roles(candidate=None)
