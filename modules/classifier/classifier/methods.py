"""The module's direct methods. Requests and responses: docs/message-schemas.md.

    get_status  model in use, update state, queue depth, counters, latency percentiles
    get_model   active and previous models, update state, cache contents
    rollback    the previous model serves again (409 when there is none)
    self_test   the active model's self-test (200 passed, 500 failed)
    classify    scores the images of ``{"<name>": "<base64 image>", ...}`` (the seed's scoring
                contract) on the active model, outside the frame stream: nothing goes to the
                outputs, and the method payload limit (128 KB) bounds the request

Unknown names get 404 with the list of methods.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from classifier.decode import decode_frame
from classifier.errors import FrameError, FrameErrorCode, ModelUpdateError
from classifier.intake import frame_requests
from classifier.model_store import ServingModel
from classifier.model_update.candidate import self_test
from classifier.model_update.updater import ModelUpdater
from classifier.pipeline import Pipeline
from classifier.predictions import top_labels
from edge_module.hub import InboundMessage, MethodResult

# A method payload is at most 128 KB: a handful of small images, never a stream.
MAX_CLASSIFY_IMAGES = 16

Handler = Callable[[Any], Awaitable[MethodResult]]


class ModuleMethods:
    def __init__(
        self,
        pipeline: Pipeline,
        updater: ModelUpdater,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.pipeline = pipeline
        self.updater = updater
        self._status = status
        self._handlers: dict[str, Handler] = {
            "get_status": self._get_status,
            "get_model": self._get_model,
            "rollback": self._rollback,
            "self_test": self._self_test,
            "classify": self._classify,
        }

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    async def call(self, name: str, payload: Any) -> MethodResult:
        handler = self._handlers.get(name)
        if handler is None:
            return MethodResult(404, {"error": f"unknown method {name!r}", "methods": self.names})
        return await handler(payload)

    async def _get_status(self, payload: Any) -> MethodResult:
        return MethodResult(200, self._status())

    async def _get_model(self, payload: Any) -> MethodResult:
        return MethodResult(200, await asyncio.to_thread(self.updater.describe))

    async def _rollback(self, payload: Any) -> MethodResult:
        try:
            return MethodResult(200, await self.updater.rollback())
        except ModelUpdateError as e:
            return MethodResult(409, {"error": e.code.value, "reason": e.reason})

    async def _self_test(self, payload: Any) -> MethodResult:
        model = self.pipeline.store.current
        limits = self.pipeline.config.limits
        result = await asyncio.to_thread(self_test, model, limits)
        body = result.to_dict() | {"model": model.describe()}
        return MethodResult(200 if result.passed else 500, body)

    async def _classify(self, payload: Any) -> MethodResult:
        if isinstance(payload, str):
            payload = {"image": payload}
        if not isinstance(payload, dict) or not payload:
            return MethodResult(
                400, {"error": "the payload must be a JSON object {name: base64 image}"}
            )
        if len(payload) > MAX_CLASSIFY_IMAGES:
            return MethodResult(
                413, {"error": f"at most {MAX_CLASSIFY_IMAGES} images per call, got {len(payload)}"}
            )
        message = InboundMessage(
            input_name="$method",
            body=json.dumps(payload).encode(),
            content_type="application/json",
        )
        config = self.pipeline.config
        try:
            requests = frame_requests(message, config.limits.max_frame_bytes)
        except FrameError as e:
            return MethodResult(400, {"error": e.code.value, "reason": e.reason})
        model = self.pipeline.store.current
        results = await asyncio.to_thread(_score, model, requests, self.pipeline)
        return MethodResult(200, {"model": model.info.to_dict(), "results": results})


def _score(model: ServingModel, requests: list[Any], pipeline: Pipeline) -> dict[str, Any]:
    config = pipeline.config
    results: dict[str, Any] = {}
    tensors, names = [], []
    for request in requests:
        name = request.meta.name or request.meta.frame_id
        try:
            if request.rejected is not None:
                raise request.rejected
            image = decode_frame(request, config.limits, model.preprocessor.spec)
            tensors.append(model.preprocessor(image))
            names.append(name)
        except FrameError as e:
            results[name] = {"error": {"code": e.code.value, "reason": e.reason}}
    if tensors:
        try:
            scores = model.engine.run(np.stack(tensors))
        except Exception as e:  # ONNX Runtime raises untyped errors
            failed = {"code": FrameErrorCode.INFERENCE_FAILED.value, "reason": str(e)}
            results.update({name: {"error": failed} for name in names})
            return results
        labels = model.engine.model.spec.labels
        for name, row in zip(names, scores, strict=True):
            ranked = top_labels(row, labels, config.top_k, config.confidence_threshold)
            results[name] = {
                "labels": [{"label": label, "confidence": round(p, 6)} for label, p in ranked]
            }
    return results
