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
from classifier.errors import ClassifierError
from classifier.model_update import start_model

log = logging.getLogger("classifier")


async def serve(config: ModuleConfig) -> None:
    # Imported here so the scoring command and tests never need the SDK's transport.
    from classifier.iothub_client import SdkHub

    # The last good model from the cache (re-verified by hash), else the built-in one.
    startup = await asyncio.to_thread(
        start_model, config.model_path, config.cache_dir, config.engine
    )
    hub = SdkHub.from_edge_environment()
    module = ClassifierModule.build(hub, config, startup)
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
