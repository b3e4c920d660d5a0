"""Entry point of the module: ``python -m classifier``.

The model is loaded and warmed up before connecting, while a GIL stall is harmless, so the
module only says it is running once it can answer in normal time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import cv2

from classifier.app import ClassifierModule
from classifier.config import ModuleConfig
from classifier.engine import InferenceEngine
from classifier.errors import ClassifierError
from classifier.metrics import Metrics
from classifier.model_store import ModelStore
from classifier.pipeline import Pipeline

log = logging.getLogger("classifier")


async def serve(config: ModuleConfig) -> None:
    # Imported here so the scoring command and tests never need the SDK's transport.
    from classifier.iothub_client import SdkHub

    engine = InferenceEngine.from_path(config.model_path, config.engine)
    engine.warm_up()
    hub = SdkHub.from_edge_environment()
    module = ClassifierModule(
        hub, Pipeline(ModelStore.serving(engine), config.pipeline, Metrics()), config
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await module.run(stop)


def main() -> int:
    try:
        config = ModuleConfig.from_env(os.environ)
    except ClassifierError as e:
        print(f"classifier: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    # OpenCV's own thread pool fights the decode workers for the same cores on small images.
    cv2.setNumThreads(1)
    try:
        asyncio.run(serve(config))
    except ClassifierError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
