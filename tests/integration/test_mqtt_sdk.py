"""The real azure-iot-device 2.14 module client against the server (TLS, port 8883)."""

from __future__ import annotations

import asyncio
import base64
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubModuleClient

from simulator.mqtt import DeliveryResult, MqttServer
from simulator.mqtt.testing import (
    RecordingHooks,
    ThrowawayTls,
    eventually,
)

# After a dropped connection the SDK stops paho's loop in a way that skips closing paho's
# wake-up socket pair (azure mqtt_transport._force_transport_disconnect_and_cleanup), and the
# next loop_start() replaces it: an SDK leak, not this server's.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <socket\.socket:pytest.PytestUnraisableExceptionWarning"
)

CLIENT = "dev1/mod1"
INPUTS = "devices/dev1/modules/mod1/inputs/#"
OUTPUTS = "devices/dev1/modules/mod1/messages/events/"


@pytest.fixture
def mqtt_port() -> int:
    return 8883  # the SDK always dials 8883; the random address keeps it free


@pytest.fixture
async def module_client(host: str, tls: ThrowawayTls, server: MqttServer) -> AsyncIterator[Any]:
    key = base64.b64encode(bytes(range(32))).decode()
    connection_string = (
        f"HostName=hub.local;DeviceId=dev1;ModuleId=mod1;SharedAccessKey={key};"
        f"GatewayHostName={host}"
    )
    client = IoTHubModuleClient.create_from_connection_string(
        connection_string, server_verification_cert=tls.ca_pem, connection_retry_interval=1
    )
    yield client
    await client.shutdown()
    del client
    gc.collect()  # so leaked sockets are reported here, under this module's filter


async def test_sdk_connects_with_its_module_identity(
    module_client: Any, hooks: RecordingHooks
) -> None:
    await module_client.connect()
    [(client_id, username, password)] = hooks.credentials
    assert client_id == CLIENT
    assert username is not None
    assert username.startswith("hub.local/dev1/mod1/?api-version=2019-10-01")
    assert password is not None
    assert password.startswith(
        b"SharedAccessSignature sr=hub.local%2Fdevices%2Fdev1%2Fmodules%2Fmod1"
    )


async def test_sdk_output_send_completes_once_the_hub_accepted_it(
    module_client: Any, hooks: RecordingHooks
) -> None:
    message = Message(  # type: ignore[no-untyped-call]  # the SDK ships no annotations here
        b'{"label": "cat"}', content_encoding="utf-8", content_type="application/json"
    )
    message.custom_properties["label"] = "cat"
    await module_client.send_message_to_output(message, "predictions")
    [published] = hooks.published
    assert published.topic.startswith(OUTPUTS + "%24.on=predictions&")
    assert published.topic.endswith("&label=cat")
    assert (published.payload, published.qos) == (b'{"label": "cat"}', 1)


async def test_sdk_input_survives_a_hub_drop_without_resubscribing(
    module_client: Any, server: MqttServer, hooks: RecordingHooks
) -> None:
    received: list[Any] = []  # appended on the SDK's handler thread
    await module_client.connect()

    async def on_message(message: Any) -> None:
        received.append(message)

    # The setter blocks its thread until the SDK subscribed, and this loop runs the server.
    await asyncio.to_thread(setattr, module_client, "on_message_received", on_message)
    await eventually(lambda: INPUTS in server.subscriptions(CLIENT), what="SDK subscribed")
    topic = "devices/dev1/modules/mod1/inputs/frames/%24.cdid=dev1&%24.cmid=camera"
    assert await server.deliver(CLIENT, topic, b"one") is DeliveryResult.DELIVERED
    await eventually(lambda: received, what="first input at the SDK")
    assert received[0].input_name == "frames"
    assert received[0].custom_properties == {"$.cdid": "dev1", "$.cmid": "camera"}

    await server.disconnect(CLIENT)
    assert await server.deliver(CLIENT, topic, b"two") is DeliveryResult.QUEUED
    await eventually(lambda: len(received) == 2, timeout_s=10, what="queued input after reconnect")
    assert received[1].data == b"two"
    assert len(hooks.connected) == 2
    assert hooks.connected[1][1] is True  # session present
    assert len([f for _, f in hooks.subscribed if f == INPUTS]) == 1
