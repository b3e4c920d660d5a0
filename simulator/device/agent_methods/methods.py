"""edgeAgent's built-in direct methods on a simulated device: ``ping``, ``RestartModule``,
``GetModuleLogs``, ``UploadModuleLogs`` and ``GetTaskStatus``.

As edgeAgent's ``RequestManager``: method names are matched case-insensitively; an unknown
one answers 400 with the supported names; a request the caller got wrong (``ArgumentException``
there, :class:`BadRequestError` here) answers 400 and any other failure 500, both with
``{"message": ...}``; success is 200 with the handler's payload (none for ``ping`` and
``RestartModule``). Nothing a caller sends takes the agent down: every error becomes an answer.

Module ids in log requests are case-insensitive regular expressions searched in the names of
the deployment's modules (``"all"`` names every one); a module matched by two items takes the
first item's filter; an id that matches nothing adds nothing (200 with ``[]``). edgeAgent's
own and edgeHub's logs are not there: the simulator plays both.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from simulator.device.agent_methods.module_logs import LogFormat, read_module_logs
from simulator.device.agent_methods.payloads import (
    ContentEncoding,
    LogFilter,
    LogsRequest,
    logs_request,
    restart_request,
    task_status_request,
)
from simulator.device.agent_methods.uploads import BackgroundTasks, BlobLogUploader
from simulator.device.runtime import LocalRuntime, LocalRuntimeError, RuntimeStatus
from simulator.errors import BadRequestError, MethodError, RequestFailedError
from simulator.jsondoc import JsonValue

__all__ = ["MAX_LOGS_PAYLOAD_BYTES", "AgentMethods"]

log = logging.getLogger(__name__)

# edgeAgent's ModuleLogsRequestHandler: 128 KB less 1 KB for the response's own fields.
MAX_LOGS_PAYLOAD_BYTES = 127_000
ALL_MODULES = "all"
_SYSTEM_MODULES = ("edgeAgent", "edgeHub")
_RESTART_POLL_S = 0.05

Handler = Callable[[JsonValue], Awaitable[JsonValue]]


class AgentMethods:
    """``handle`` is the ``$edgeAgent`` module's method handler (``methods.MethodHandler``).

    ``restart_timeout_s`` bounds how long ``RestartModule`` waits for the module to run again
    (edgeAgent's restart command waits for Docker's restart, stop grace period included).
    """

    def __init__(
        self,
        runtime: LocalRuntime,
        uploader: BlobLogUploader,
        *,
        iothub: str,
        device_id: str,
        restart_timeout_s: float,
    ) -> None:
        self._runtime = runtime
        self._uploader = uploader
        self._iothub = iothub
        self._device_id = device_id
        self._restart_timeout_s = restart_timeout_s
        self._tasks = BackgroundTasks()
        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("ping", self._ping),
                ("RestartModule", self._restart),
                ("GetModuleLogs", self._get_logs),
                ("UploadModuleLogs", self._upload_logs),
                ("GetTaskStatus", self._task_status),
            )
        }

    async def handle(self, name: str, payload: JsonValue) -> tuple[int, JsonValue]:
        entry = self._handlers.get(name.lower())
        if entry is None:
            supported = ",".join(n for n, _ in self._handlers.values())
            message = f"Command '{name}' not found. The supported commands are - {supported}"
            return BadRequestError.status, {"message": message}
        try:
            return 200, await entry[1](payload)
        except MethodError as e:
            log.info("device %s: %s answered %d: %s", self._device_id, name, e.status, e)
            return e.status, {"message": e.message}
        except Exception as e:
            log.exception("device %s: %s failed", self._device_id, name)
            return RequestFailedError.status, {"message": f"{type(e).__name__}: {e}"}

    async def close(self) -> None:
        await self._tasks.close()

    # -- the methods -----------------------------------------------------------------------

    async def _ping(self, _payload: JsonValue) -> JsonValue:
        return None

    async def _restart(self, payload: JsonValue) -> JsonValue:
        module = restart_request(payload).id
        if module in _SYSTEM_MODULES:
            raise RequestFailedError(
                f"Module {module} is played by the simulator and cannot restart"
            )
        report = self._runtime.module_reports().get(module)
        if report is None:
            raise RequestFailedError(f"Module {module} not found in the current environment")
        try:
            await self._runtime.restart_module(module)
        except LocalRuntimeError as e:
            raise RequestFailedError(str(e)) from e
        await self._restarted(module, report.last_restart_time)
        return None

    async def _restarted(self, module: str, before: datetime | None) -> None:
        """Wait until the supervisor has started ``module`` again (or failed to)."""
        deadline = time.monotonic() + self._restart_timeout_s
        while time.monotonic() < deadline:
            report = self._runtime.module_reports().get(module)
            if report is None:
                raise RequestFailedError(f"Module {module} was removed while restarting")
            if report.last_restart_time != before and report.runtime_status in (
                RuntimeStatus.RUNNING,
                RuntimeStatus.FAILED,
            ):
                if report.runtime_status is RuntimeStatus.FAILED:
                    raise RequestFailedError(
                        f"{module} did not start again: {report.status_description}"
                    )
                return
            await asyncio.sleep(_RESTART_POLL_S)
        raise RequestFailedError(f"{module} did not restart within {self._restart_timeout_s:g} s")

    async def _get_logs(self, payload: JsonValue) -> JsonValue:
        request = logs_request(payload, upload=False)
        output = self._format(request)
        responses: list[JsonValue] = []
        size = 0
        for module, log_filter in self._modules(request):
            body = await read_module_logs(self._runtime, module, log_filter, output)
            if request.encoding is ContentEncoding.GZIP:
                size += len(body)
                responses.append(
                    {"id": module, "payloadBytes": base64.b64encode(body).decode(), "payload": None}
                )
            else:
                text = body.decode("utf-8", errors="replace")
                size += len(text)
                responses.append({"id": module, "payloadBytes": None, "payload": text})
        if size > MAX_LOGS_PAYLOAD_BYTES:
            raise BadRequestError(
                f"The payload is too large for a direct method. GetModuleLogs supports up to "
                f"{MAX_LOGS_PAYLOAD_BYTES} bytes of logs. The current request returned {size} "
                "bytes.\nTry reducing the size of the logs by setting the 'tail', 'since' and "
                "'until' fields in log options filter, or ask for gzip encoding."
            )
        return responses

    async def _upload_logs(self, payload: JsonValue) -> JsonValue:
        request = logs_request(payload, upload=True)
        assert request.sas_url is not None
        sas_url = request.sas_url
        output = self._format(request)
        modules = self._modules(request)

        async def upload_all() -> None:
            async def upload_one(module: str, log_filter: LogFilter) -> None:
                body = await read_module_logs(self._runtime, module, log_filter, output)
                await self._uploader.upload(
                    sas_url, module, body, request.content_type, request.encoding
                )

            await asyncio.gather(*(upload_one(m, f) for m, f in modules))

        return self._tasks.run("upload logs", upload_all)

    async def _task_status(self, payload: JsonValue) -> JsonValue:
        return self._tasks.status(task_status_request(payload).correlation_id)

    # -- helpers ---------------------------------------------------------------------------

    def _format(self, request: LogsRequest) -> LogFormat:
        return LogFormat(request.content_type, request.encoding, self._iothub, self._device_id)

    def _modules(self, request: LogsRequest) -> list[tuple[str, LogFilter]]:
        """(module, filter) for every module an item's id matches; the first item wins."""
        names = self._runtime.module_names()
        chosen: dict[str, LogFilter] = {}
        for item in request.items:
            for name in names:
                if name in chosen:
                    continue
                if item.id.pattern.lower() == ALL_MODULES or item.id.search(name):
                    chosen[name] = item.filter
        return list(chosen.items())
