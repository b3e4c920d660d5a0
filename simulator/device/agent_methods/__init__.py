"""edgeAgent's built-in direct methods (ping, RestartModule, GetModuleLogs, UploadModuleLogs,
GetTaskStatus) on a simulated device, and the endpoint that routes ``$edgeAgent``'s methods to
them. The contract is in docs/fleet.md ("edgeAgent's direct methods")."""

from simulator.device.agent_methods.endpoint import DeviceEndpoint
from simulator.device.agent_methods.methods import AgentMethods
from simulator.device.agent_methods.uploads import BlobLogUploader

__all__ = ["AgentMethods", "BlobLogUploader", "DeviceEndpoint"]
