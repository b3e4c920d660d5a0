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
import threading

import cv2

from classifier import opencv_limits
from classifier.app import ClassifierModule
from classifier.config import ModuleConfig
from classifier.engine import InferenceEngine
from classifier.errors import ClassifierError, HubWedgedError
from classifier.metrics import Metrics
from classifier.pipeline import Pipeline

log = logging.getLogger("classifier")

EXIT_WEDGED = 3


async def serve(config: ModuleConfig) -> None:
    # Imported here so the scoring command and tests never need the SDK's transport.
    from classifier.iothub_client import SdkHub

    engine = InferenceEngine.from_path(config.model_path, config.engine)
    engine.warm_up()
    metrics = Metrics()
    hub = SdkHub.from_edge_environment(
        config.hub.intake_capacity, config.hub.sas_token_ttl_s, metrics
    )
    module = ClassifierModule(hub, Pipeline(engine, config.pipeline, metrics), config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    backstop = asyncio.create_task(_exit_if_shutdown_hangs(module, config))
    try:
        await module.run(stop)
    except HubWedgedError as e:
        # The orderly part of the shutdown is done. A wedged SDK leaves threads that
        # asyncio.run would wait for (its calls run in the default executor), so leave now.
        log.error("exiting with status %d: %s", EXIT_WEDGED, e)
        logging.shutdown()
        os._exit(EXIT_WEDGED)
    finally:
        backstop.cancel()


async def _exit_if_shutdown_hangs(module: ClassifierModule, config: ModuleConfig) -> None:
    """A wedged SDK may hang in its own threads on the way out; the process must end anyway,
    non-zero, so edgeAgent restarts it."""
    await module.wedged.wait()
    deadline_s = config.shutdown_grace_s + 30.0
    timer = threading.Timer(deadline_s, os._exit, (EXIT_WEDGED,))
    timer.daemon = True
    timer.start()


def main() -> int:
    opencv_capped = opencv_limits.applied_before_load
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
    if not opencv_capped:
        log.warning("OpenCV was loaded before its image-size limits could be set")
    try:
        asyncio.run(serve(config))
    except ClassifierError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
