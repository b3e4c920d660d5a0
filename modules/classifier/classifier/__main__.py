"""Entry point of the module: ``python -m classifier``.

The model is loaded and warmed up before connecting, while a GIL stall is harmless, so the
module only says it is running once it can answer in normal time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import cv2

from classifier import opencv_limits
from classifier.app import ClassifierModule
from classifier.config import ModuleConfig
from classifier.errors import ClassifierError
from classifier.metrics import Metrics
from classifier.model_update import start_model
from classifier.prometheus_endpoint import (
    ClassifierCollector,
    IdentityLabels,
    MetricsEndpoint,
    MetricsEndpointConfig,
)
from edge_module.hub_factory import hub_from_environment
from edge_module.run import EXIT_SETTINGS, configure_logging, exit_if_shutdown_hangs, run_module

log = logging.getLogger("classifier")


async def serve(
    config: ModuleConfig, metrics_config: MetricsEndpointConfig, stop: asyncio.Event
) -> None:
    # The last good model from the cache (re-verified by hash), else the built-in one.
    startup = await asyncio.to_thread(
        start_model, config.model_path, config.cache_dir, config.engine
    )
    metrics = Metrics()
    hub = hub_from_environment(
        os.environ, config.hub.intake_capacity, config.hub.sas_token_ttl_s, metrics
    )
    module = ClassifierModule.build(hub, config, startup, metrics)
    pipeline = module.pipeline
    # Model info is read through the pipeline at every scrape: a hot swap shows at once.
    collector = ClassifierCollector(
        pipeline.metrics,
        lambda: pipeline.model_info,
        lambda: pipeline.queued,
        IdentityLabels.from_env(os.environ),
    )
    endpoint = MetricsEndpoint.start(metrics_config, collector)
    backstop = asyncio.create_task(
        exit_if_shutdown_hangs(module.wedged, config.shutdown_grace_s + 30.0)
    )
    try:
        await module.run(stop)
    finally:
        backstop.cancel()
        if endpoint is not None:
            endpoint.stop()


def main() -> int:
    opencv_capped = opencv_limits.applied_before_load
    try:
        config = ModuleConfig.from_env(os.environ)
        metrics_config = MetricsEndpointConfig.from_env(os.environ)
    except ClassifierError as e:
        print(f"classifier: {e}", file=sys.stderr)
        return EXIT_SETTINGS
    configure_logging(config.log_level)
    # OpenCV's own thread pool fights the decode workers for the same cores on small images.
    cv2.setNumThreads(1)
    if not opencv_capped:
        log.warning("OpenCV was loaded before its image-size limits could be set")
    return run_module(lambda stop: serve(config, metrics_config, stop))


if __name__ == "__main__":
    sys.exit(main())
