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
from classifier.log_format import SyslogSeverityFormatter
from classifier.model_update import start_model
from classifier.prometheus_endpoint import (
    ClassifierCollector,
    IdentityLabels,
    MetricsEndpoint,
    MetricsEndpointConfig,
)

log = logging.getLogger("classifier")


async def serve(config: ModuleConfig, metrics_config: MetricsEndpointConfig) -> None:
    # Imported here so the scoring command and tests never need the SDK's transport.
    from classifier.iothub_client import SdkHub

    # The last good model from the cache (re-verified by hash), else the built-in one.
    startup = await asyncio.to_thread(
        start_model, config.model_path, config.cache_dir, config.engine
    )
    hub = SdkHub.from_edge_environment()
    module = ClassifierModule.build(hub, config, startup)
    pipeline = module.pipeline
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Model info is read through the pipeline at every scrape: a hot swap shows at once.
    collector = ClassifierCollector(
        pipeline.metrics,
        lambda: pipeline.model_info,
        lambda: pipeline.queued,
        IdentityLabels.from_env(os.environ),
    )
    endpoint = MetricsEndpoint.start(metrics_config, collector)
    try:
        await module.run(stop)
    finally:
        if endpoint is not None:
            endpoint.stop()


def main() -> int:
    try:
        config = ModuleConfig.from_env(os.environ)
        metrics_config = MetricsEndpointConfig.from_env(os.environ)
    except ClassifierError as e:
        print(f"classifier: {e}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(SyslogSeverityFormatter())
    logging.basicConfig(level=config.log_level, handlers=[handler])
    # OpenCV's own thread pool fights the decode workers for the same cores on small images.
    cv2.setNumThreads(1)
    try:
        asyncio.run(serve(config, metrics_config))
    except ClassifierError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
