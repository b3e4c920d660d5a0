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
from classifier.errors import ClassifierError, HubWedgedError
from classifier.log_format import SyslogSeverityFormatter
from classifier.metrics import Metrics
from classifier.model_update import start_model
from classifier.prometheus_endpoint import (
    ClassifierCollector,
    IdentityLabels,
    MetricsEndpoint,
    MetricsEndpointConfig,
)

log = logging.getLogger("classifier")

EXIT_WEDGED = 3


async def serve(config: ModuleConfig, metrics_config: MetricsEndpointConfig) -> None:
    # Imported here so the scoring command and tests never need the SDK's transport.
    from classifier.iothub_client import SdkHub

    # The last good model from the cache (re-verified by hash), else the built-in one.
    startup = await asyncio.to_thread(
        start_model, config.model_path, config.cache_dir, config.engine
    )
    metrics = Metrics()
    hub = SdkHub.from_edge_environment(
        config.hub.intake_capacity, config.hub.sas_token_ttl_s, metrics
    )
    module = ClassifierModule.build(hub, config, startup, metrics)
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
        if endpoint is not None:
            endpoint.stop()


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
        metrics_config = MetricsEndpointConfig.from_env(os.environ)
    except ClassifierError as e:
        print(f"classifier: {e}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(SyslogSeverityFormatter())
    logging.basicConfig(level=config.log_level, handlers=[handler])
    # OpenCV's own thread pool fights the decode workers for the same cores on small images.
    cv2.setNumThreads(1)
    if not opencv_capped:
        log.warning("OpenCV was loaded before its image-size limits could be set")
    try:
        asyncio.run(serve(config, metrics_config))
    except ClassifierError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
