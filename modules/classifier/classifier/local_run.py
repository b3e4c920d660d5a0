"""The classifier module on an in-process hub, for scoring files and for tests.

Messages delivered to the hub go through exactly the module's code (intake, decode,
preprocess, batching, inference, the outcome schema); what it sends stays in ``hub.sent``.
Leaving the context stops the module, which drains first: every message delivered before
then has its outcome in ``hub.sent``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from classifier.app import ClassifierModule
from classifier.config import ModuleConfig
from classifier.engine import InferenceEngine
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.pipeline import Pipeline
from edge_module.local_hub import LocalHub


@dataclass(frozen=True)
class LocalClassifier:
    hub: LocalHub
    module: ClassifierModule


@asynccontextmanager
async def classifier_on_local_hub(
    config: ModuleConfig, engine: InferenceEngine | None = None, hub: LocalHub | None = None
) -> AsyncIterator[LocalClassifier]:
    """Runs a module serving ``engine`` (default: ``config.model_path``) until the block ends."""
    if engine is None:
        engine = await asyncio.to_thread(
            InferenceEngine.from_path, config.model_path, config.engine
        )
    hub = hub or LocalHub()
    pipeline = Pipeline(ModelStore.serving(engine), config.pipeline, Metrics())
    module = ClassifierModule(hub, pipeline, config)
    stop = asyncio.Event()
    running = asyncio.create_task(module.run(stop))
    ready = asyncio.create_task(hub.ready.wait())
    try:
        # A module that fails while starting never sets ``ready``: wait for either.
        await asyncio.wait({ready, running}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            running.result()  # raises why it stopped
            raise RuntimeError("the classifier stopped before it was ready")
        yield LocalClassifier(hub, module)
    finally:
        ready.cancel()
        stop.set()
        await running
