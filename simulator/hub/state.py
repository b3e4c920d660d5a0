"""The simulated IoT Hub's state and the operations on it, as IoT Hub performs them.

The service API is an HTTP adapter over this class, and simulated devices reach it through a
``DeviceLink``; both see the same registry, twins, configurations and deployments. Every
operation that can change which deployments a device gets (a device created or deleted, its
tags changed, a deployment created, updated or deleted) re-evaluates the targets at once.

``load`` opens the state directory's database (or creates it) and reads everything into
memory; ``close`` saves what is kept in memory only (activity times) and closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from simulator.deployment.layering import is_base, layer_content_problems
from simulator.deployment.validation import check_modules_content
from simulator.errors import HubError, SimulatorError
from simulator.hub.configurations import ConfigurationStore
from simulator.hub.database import HubDatabase
from simulator.hub.deployments import DeploymentEngine
from simulator.hub.documents import TwinDocuments
from simulator.hub.identity import DeviceFields, DeviceIdentity, ModuleFields, ModuleIdentity
from simulator.hub.presence import Presence
from simulator.hub.queries import parse_query, run_query
from simulator.hub.registry import Registry
from simulator.hub.twins import DEVICE_TWIN, TwinStore
from simulator.hub.upstream import UpstreamStore
from simulator.jsondoc import JsonObject, JsonValue, is_object
from simulator.methods import MethodResult

log = logging.getLogger(__name__)

UPSTREAM_FILE = "upstream.sqlite"
_REQUIRED_EDGE_MODULES = ("$edgeAgent", "$edgeHub")


class HubState:
    """``__init__`` only assigns; use :meth:`load`."""

    def __init__(
        self,
        database: HubDatabase,
        registry: Registry,
        twins: TwinStore,
        configurations: ConfigurationStore,
        presence: Presence,
        documents: TwinDocuments,
        deployments: DeploymentEngine,
        upstream: UpstreamStore,
    ) -> None:
        self.database = database
        self.registry = registry
        self.twins = twins
        self.configurations = configurations
        self.presence = presence
        self.documents = documents
        self.deployments = deployments
        self.upstream = upstream
        self._unsubscribe = twins.add_tags_listener(self._tags_changed)

    @classmethod
    def load(cls, state_dir: Path, hub_host_name: str) -> HubState:
        database = HubDatabase.open(state_dir)
        try:
            return cls._build(
                database, hub_host_name, UpstreamStore.open(state_dir / UPSTREAM_FILE)
            )
        except BaseException:
            database.close()
            raise

    @classmethod
    def in_memory(cls, hub_host_name: str, upstream: UpstreamStore) -> HubState:
        return cls._build(HubDatabase.in_memory(), hub_host_name, upstream)

    @classmethod
    def _build(cls, database: HubDatabase, host: str, upstream: UpstreamStore) -> HubState:
        registry = Registry.load(database, host)
        twins = TwinStore.load(database)
        configurations = ConfigurationStore.load(database)
        presence = Presence.load(database)
        documents = TwinDocuments(registry, twins, presence)
        deployments = DeploymentEngine.load(database, registry, twins, configurations, documents)
        return cls(
            database, registry, twins, configurations, presence, documents, deployments, upstream
        )

    def close(self) -> None:
        self._unsubscribe()
        try:
            self.presence.save()
        finally:
            self.upstream.close()
            self.database.close()

    @property
    def hub_host_name(self) -> str:
        return self.registry.hub_host_name

    def _tags_changed(self, device_id: str, module_id: str) -> None:
        if module_id == DEVICE_TWIN:
            self.deployments.evaluate([device_id])

    # -- devices ---------------------------------------------------------------------------

    def create_device(
        self, device_id: str, fields: DeviceFields, tags: JsonObject | None = None
    ) -> DeviceIdentity:
        """A new device (its twin, with ``tags``, first: deployments target by tags)."""
        if self.registry.get_device(device_id) is not None:
            raise HubError(409, "DeviceAlreadyExists", f"device {device_id!r} already exists")
        with self.database.transaction():
            device = self.registry.add_device(device_id, fields)
            self.twins.ensure(device_id, DEVICE_TWIN)
            if tags:
                self.twins.update(device_id, DEVICE_TWIN, tags_patch=tags)
            self.deployments.evaluate([device_id])
        return device

    def update_device(
        self, device_id: str, fields: DeviceFields, *, if_match: str | None
    ) -> DeviceIdentity:
        device = self.registry.update_device(device_id, fields, if_match=if_match)
        self.deployments.evaluate([device_id])
        return device

    def delete_device(self, device_id: str, *, if_match: str | None) -> None:
        if self.presence.device_connected(device_id):
            # Its edgeHub and agent would keep using the identity and twins it would lose.
            raise HubError(
                400,
                "ArgumentInvalid",
                f"device {device_id!r} runs in this simulator: start the simulator without it "
                "to delete it",
            )
        with self.database.transaction():
            self.registry.remove_device(device_id, if_match=if_match)
            self.twins.remove_device(device_id)
            self.deployments.forget_device(device_id)
            self.presence.forget(device_id)

    # -- module identities -----------------------------------------------------------------

    def create_module(self, device_id: str, module_id: str, fields: ModuleFields) -> ModuleIdentity:
        if self.registry.get_module(device_id, module_id) is not None:
            raise HubError(
                409,
                "ModuleAlreadyExistsOnDevice",
                f"module {module_id!r} already exists on {device_id!r}",
            )
        module = self.registry.add_module(device_id, module_id, fields)
        self.twins.ensure(device_id, module_id)
        return module

    def delete_module(self, device_id: str, module_id: str, *, if_match: str | None) -> None:
        with self.database.transaction():
            self.registry.remove_module(device_id, module_id, if_match=if_match)
            self.twins.remove(device_id, module_id)
            self.presence.forget(device_id, module_id)

    # -- twins -----------------------------------------------------------------------------

    def twin_document(self, device_id: str, module_id: str = DEVICE_TWIN) -> JsonObject:
        if module_id == DEVICE_TWIN:
            return self.documents.device_twin(self.registry.require_device(device_id))
        self.registry.require_device(device_id)
        return self.documents.module_twin(self.registry.require_module(device_id, module_id))

    def update_twin(
        self,
        device_id: str,
        module_id: str,
        body: JsonObject,
        *,
        if_match: str | None,
        replace: bool,
    ) -> JsonObject:
        """The service PATCH (merge) or PUT (replace) of a twin's tags and desired properties."""
        self.twin_document(device_id, module_id)  # 404s for unknown devices and modules
        properties = body.get("properties")
        desired = properties.get("desired") if is_object(properties) else None
        if replace:
            self.twins.replace(
                device_id,
                module_id,
                desired=desired or {},
                tags=body.get("tags") or {},
                if_match=if_match,
            )
        else:
            self.twins.update(
                device_id,
                module_id,
                desired_patch=desired,
                tags_patch=body.get("tags"),
                if_match=if_match,
            )
        return self.twin_document(device_id, module_id)

    def query(self, text: str) -> list[JsonObject]:
        return run_query(parse_query(text), self.documents)

    async def invoke_method(
        self,
        device_id: str,
        module_id: str,
        method_name: str,
        payload: JsonValue,
        *,
        response_timeout_s: float,
        connect_timeout_s: float,
    ) -> MethodResult:
        self.registry.require_device(device_id)
        self.registry.require_module(device_id, module_id)
        endpoint = self.presence.endpoint(device_id)
        if endpoint is None:
            raise HubError(404, "DeviceNotOnline", f"device {device_id!r} is not running")
        return await endpoint.methods.invoke(
            device_id,
            module_id,
            method_name,
            payload,
            response_timeout_s=response_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    # -- deployments -----------------------------------------------------------------------

    def apply_content(self, device_id: str, content: JsonObject) -> None:
        """``applyConfigurationContent`` (set-modules): the whole deployment, validated first,
        written to the device's twins; its runtime reconciles from there."""
        device = self.registry.require_device(device_id)
        if not device.is_edge:
            raise HubError(400, "ArgumentInvalid", f"{device_id!r} is not an IoT Edge device")
        missing = [m for m in _REQUIRED_EDGE_MODULES if m not in content]
        if missing:
            raise HubError(400, "ArgumentInvalid", f"modulesContent lacks {', '.join(missing)}")
        _refuse_invalid(content)
        # Twins validate every module's desired properties before setting any.
        self.twins.apply_modules_content(device_id, content)

    def configuration(self, config_id: str) -> JsonObject:
        return self.deployments.describe(self.configurations.get(config_id))

    def list_configurations(self, top: int | None) -> list[JsonObject]:
        return [self.deployments.describe(doc) for doc in self.configurations.list(top)]

    def put_configuration(self, config_id: str, body: object, if_match: str | None) -> JsonObject:
        if is_object(body) and config_id not in self.configurations.ids():
            _check_edge_content(body.get("content"))
        with self.database.transaction():
            stored = self.configurations.put(config_id, body, if_match)
            self.deployments.evaluate()
        return self.deployments.describe(stored)

    def delete_configuration(self, config_id: str, if_match: str | None) -> None:
        with self.database.transaction():
            self.configurations.delete(config_id, if_match)
            self.deployments.evaluate()


def _refuse_invalid(content: Mapping[str, object]) -> None:
    try:
        check_modules_content(content)
    except SimulatorError as e:
        raise HubError(400, "ArgumentInvalid", f"invalid deployment: {e}") from e


def _check_edge_content(content: object) -> None:
    """A base deployment must be a whole valid deployment; a layer may set only paths."""
    modules_content = content.get("modulesContent") if is_object(content) else None
    if not is_object(modules_content):
        return  # not an edge deployment; the store checks the rest of its shape
    if is_base(modules_content):
        _refuse_invalid(modules_content)
        return
    problems = layer_content_problems(modules_content, "layered deployment")
    if problems:
        raise HubError(400, "ArgumentInvalid", "; ".join(problems))
