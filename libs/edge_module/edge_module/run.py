"""The run loop every module's ``__main__`` shares: logging in IoT Edge's format, one stop
event set by SIGTERM or SIGINT, and exit codes edgeAgent acts on.

Exit codes: 0 stopped when asked; 1 failed; 2 bad settings (restarting cannot help, but
edgeAgent restarts anyway, and the log says why); 3 the edgeHub connection wedged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable

from edge_module.errors import EdgeModuleError, HubWedgedError, SettingsError
from edge_module.log_format import SyslogSeverityFormatter

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_SETTINGS = 2
EXIT_WEDGED = 3

Serve = Callable[[asyncio.Event], Awaitable[None]]


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(SyslogSeverityFormatter())
    logging.basicConfig(level=level, handlers=[handler])


def run_module(serve: Serve) -> int:
    """Runs ``serve(stop)`` until it returns; SIGTERM and SIGINT set ``stop``."""
    try:
        asyncio.run(_serve(serve))
    except SettingsError as e:  # e.g. the transport's variables, read when connecting
        log.error("%s", e)
        return EXIT_SETTINGS
    except EdgeModuleError as e:
        log.error("%s", e)
        return EXIT_FAILED
    return 0


async def _serve(serve: Serve) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(stop)
    except HubWedgedError as e:
        # The orderly part of the shutdown is done. A wedged SDK leaves threads that
        # asyncio.run would wait for (its calls run in the default executor), so leave now.
        log.error("exiting with status %d: %s", EXIT_WEDGED, e)
        logging.shutdown()
        os._exit(EXIT_WEDGED)


async def exit_if_shutdown_hangs(wedged: asyncio.Event, deadline_s: float) -> None:
    """A wedged SDK may hang in its own threads on the way out; the process must end anyway,
    non-zero, so edgeAgent restarts it. Run as a task beside the module."""
    await wedged.wait()
    timer = threading.Timer(deadline_s, os._exit, (EXIT_WEDGED,))
    timer.daemon = True
    timer.start()
