"""Where the hub's direct methods land on a simulated device.

A module's methods travel through edgeHub to the module's MQTT connection. ``$edgeAgent`` is
not a connected module here (the simulator plays it), so its methods go to the agent's handler
in this process, through the same request/response bookkeeping (``MethodCalls`` over a
``LoopbackTransport``): payload limits and timeouts behave as for any module.
"""

from __future__ import annotations

from simulator.device.agent import EDGE_AGENT
from simulator.device.edgehub import EdgeHub
from simulator.jsondoc import JsonValue
from simulator.methods import MethodCalls, MethodDispatcher, MethodResult

__all__ = ["DeviceEndpoint"]


class DeviceEndpoint:
    """The hub's ``DeviceEndpoint`` for one device; also its ``MethodDispatcher``."""

    def __init__(self, edgehub: EdgeHub, agent_calls: MethodCalls) -> None:
        self._edgehub = edgehub
        self._agent_calls = agent_calls

    @property
    def methods(self) -> MethodDispatcher:
        return self

    def is_connected(self, module_id: str) -> bool:
        return self._edgehub.is_connected(module_id)

    async def invoke(
        self,
        device_id: str,
        module_id: str,
        method_name: str,
        payload: JsonValue,
        *,
        response_timeout_s: float,
        connect_timeout_s: float = 0.0,
    ) -> MethodResult:
        calls = self._agent_calls if module_id == EDGE_AGENT else self._edgehub.methods
        return await calls.invoke(
            device_id,
            module_id,
            method_name,
            payload,
            response_timeout_s=response_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )
