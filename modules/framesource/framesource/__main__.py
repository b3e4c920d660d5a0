"""Entry point of the module: ``python -m framesource``.

Reads frames from its source (``SOURCE_URL``: synthetic, a video file, an image folder, an
RTSP or HTTP camera) and sends them to its ``frames`` output; see ``app`` and ``settings``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from edge_module.errors import SettingsError
from edge_module.hub_factory import hub_from_environment
from edge_module.run import EXIT_SETTINGS, configure_logging, exit_if_shutdown_hangs, run_module
from framesource.app import FrameSourceModule
from framesource.config import FrameSourceConfig


async def serve(config: FrameSourceConfig, stop: asyncio.Event) -> None:
    hub = hub_from_environment(os.environ, config.hub.intake_capacity, config.hub.sas_token_ttl_s)
    module = FrameSourceModule(hub, config)
    backstop = asyncio.create_task(
        exit_if_shutdown_hangs(module.session.wedged, config.shutdown_grace_s + 30.0)
    )
    try:
        await module.run(stop)
    finally:
        backstop.cancel()


def main() -> int:
    try:
        config = FrameSourceConfig.from_env(os.environ)
    except SettingsError as e:
        print(f"framesource: {e}", file=sys.stderr)
        return EXIT_SETTINGS
    configure_logging(config.log_level)
    return run_module(lambda stop: serve(config, stop))


if __name__ == "__main__":
    sys.exit(main())
