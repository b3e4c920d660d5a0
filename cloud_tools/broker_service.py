"""The operator's side of the MQTT topic contract (docs/mqtt.md): desired documents, reported
states, method calls and outputs, on a broker given by ``--mqtt-*`` options or ``MQTT_*``
variables. Synchronous, like ``HubService``: paho reads on its own thread, calls wait on events.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_tools.errors import FAILED, TIMED_OUT, USAGE, CliError
from edge_module.hub import merge_patch
from edge_module.mqtt_topics import desired_topic, method_topic, reported_filter

Received = Callable[[Any], None]  # a paho MQTTMessage


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    ca_file: str | None
    username: str | None
    password: str | None
    topic_prefix: str
    tls: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BrokerAddress:
        host = args.mqtt_host or os.environ.get("MQTT_HOST")
        if not host:
            raise CliError("no broker: give --mqtt-host or set MQTT_HOST", USAGE)
        tls = os.environ.get("MQTT_TLS", "true").lower() not in ("0", "false", "no", "off")
        return cls(
            host=host,
            port=int(args.mqtt_port or os.environ.get("MQTT_PORT") or (8883 if tls else 1883)),
            ca_file=args.mqtt_ca_file or os.environ.get("MQTT_CA_FILE"),
            username=args.mqtt_username or os.environ.get("MQTT_USERNAME"),
            password=os.environ.get("MQTT_PASSWORD"),
            topic_prefix=(args.mqtt_topic_prefix or os.environ.get("MQTT_TOPIC_PREFIX") or "edge"),
            tls=tls,
        )


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("MQTT broker (with --mqtt; the password: $MQTT_PASSWORD)")
    group.add_argument("--mqtt", action="store_true", help="talk to an MQTT v5 broker")
    group.add_argument("--mqtt-host", help="the broker (default: $MQTT_HOST)")
    group.add_argument("--mqtt-port", type=int, help="default: $MQTT_PORT, else 8883")
    group.add_argument("--mqtt-ca-file", help="CA to trust (default: $MQTT_CA_FILE)")
    group.add_argument("--mqtt-username", help="default: $MQTT_USERNAME")
    group.add_argument("--mqtt-topic-prefix", help="default: $MQTT_TOPIC_PREFIX, else edge")


class BrokerService:
    def __init__(
        self,
        address: BrokerAddress,
        timeout_s: float = 15.0,
        *,
        client_id: str | None = None,
        session_expiry_s: int = 0,
    ) -> None:
        """``session_expiry_s`` above 0: a persistent session under ``client_id``, so a
        subscriber (``monitor``) misses nothing while it or the broker restarts."""
        self.address = address
        self.timeout_s = timeout_s
        self.client_id = client_id or f"operator-{uuid.uuid4().hex[:12]}"
        self._session_expiry_s = session_expiry_s
        self.responses = f"{address.topic_prefix}/callers/{self.client_id}"
        self._client: Any = paho.Client(client_id=self.client_id, protocol=paho.MQTTv5)
        if address.tls:
            context = ssl.create_default_context(cafile=address.ca_file)
            self._client.tls_set_context(context)
        if address.username:
            self._client.username_pw_set(address.username, address.password)
        self._lock = threading.Lock()
        self._done: dict[int, threading.Event] = {}
        self._codes: dict[int, list[int]] = {}
        self._handlers: list[tuple[str, Received]] = []
        self._connack = threading.Event()
        self._connack_code = -1
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._connect()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BrokerService:
        return cls(BrokerAddress.from_args(args))

    def _connect(self) -> None:
        a = self.address
        try:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self._session_expiry_s
            persistent = self._session_expiry_s > 0
            self._client.connect(
                a.host, a.port, 30, clean_start=not persistent, properties=properties
            )
        except (OSError, ValueError) as e:
            raise CliError(f"cannot reach the MQTT broker at {a.host}:{a.port}: {e}") from e
        self._client.loop_start()
        if not self._connack.wait(self.timeout_s):
            self.close()
            raise CliError(f"the MQTT broker at {a.host}:{a.port} did not answer", TIMED_OUT)
        if self._connack_code >= 0x80:
            self.close()
            raise CliError(f"the MQTT broker refused the connection: {self._connack_reason}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> BrokerService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the contract ----------------------------------------------------------------------

    def desired(self, module: str) -> dict[str, Any]:
        """The module's retained desired document; ``{"$version": 0}`` when none is set."""
        retained = self.retained(desired_topic(self.address.topic_prefix, module))
        docs = [_json(body) for body in retained.values()]
        return docs[0] if docs and isinstance(docs[0], dict) else {"$version": 0}

    def update_desired(self, module: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merges ``patch`` into the desired document, as a twin does, with ``$version`` + 1."""
        current = self.desired(module)
        version = int(current.get("$version", 0)) + 1
        doc = merge_patch(current, patch) | {"$version": version}
        topic = desired_topic(self.address.topic_prefix, module)
        self.publish(topic, json.dumps(doc).encode(), _json_properties(), retain=True)
        return doc

    def reported(self, module: str) -> dict[str, dict[str, Any]]:
        """Each replica's retained reported state, by client id."""
        retained = self.retained(reported_filter(self.address.topic_prefix, module))
        return {topic.rsplit("/", 1)[-1]: _json(body) for topic, body in retained.items()}

    def module_twin(self, device: str, module: str) -> dict[str, Any]:
        """The twin's view of one replica (``device``): the module's desired document and
        that replica's reported state."""
        return {
            "desired": self.desired(module),
            "reported": self.reported(module).get(device) or {},
        }

    def patch_desired(self, device: str, module: str, patch: dict[str, Any]) -> int:
        """``update_desired`` for every replica (``device`` is not needed); the new $version."""
        return int(self.update_desired(module, patch)["$version"])

    def invoke(
        self, device: str, module: str, method: str, payload: Any, timeout_s: float
    ) -> tuple[int, Any]:
        """A method call as an MQTT v5 request to the replica ``device``; ``any``: whichever
        replica takes it."""
        replica = device
        correlation = uuid.uuid4().bytes
        answered = threading.Event()
        answer: list[Any] = []

        def on_response(message: Any) -> None:
            if getattr(message.properties, "CorrelationData", None) == correlation:
                answer.append(message)
                answered.set()

        self.subscribe(self.responses, on_response)
        properties = _json_properties()
        properties.ResponseTopic = self.responses
        properties.CorrelationData = correlation
        topic = method_topic(self.address.topic_prefix, module, replica, method)
        self.publish(topic, json.dumps(payload).encode(), properties)
        if not answered.wait(timeout_s):
            raise CliError(
                f"{module}/{replica} did not answer {method} in {timeout_s} s", TIMED_OUT
            )
        status = dict(getattr(answer[0].properties, "UserProperty", [])).get("status", "500")
        return int(status), _json(answer[0].payload)

    # -- plumbing --------------------------------------------------------------------------

    def follow(self, topic_filter: str, received: Received, stop: threading.Event) -> None:
        """Hands every message on ``topic_filter`` to ``received`` (on paho's thread) until
        ``stop`` is set."""
        self.subscribe(topic_filter, received)
        stop.wait()

    def publish(
        self, topic: str, body: bytes, properties: Properties | None = None, retain: bool = False
    ) -> None:
        info = self._client.publish(topic, body, qos=1, retain=retain, properties=properties)
        try:
            info.wait_for_publish(self.timeout_s)
        except RuntimeError as e:
            raise CliError(f"could not publish to {topic}: {e}") from e
        if not info.is_published():
            raise CliError(f"the broker did not acknowledge the message to {topic}", TIMED_OUT)

    def subscribe(self, topic_filter: str, handler: Received, qos: int = 1) -> None:
        with self._lock:
            self._handlers.append((topic_filter, handler))
        self._subscribe(topic_filter, qos)

    def retained(self, topic_filter: str) -> dict[str, bytes]:
        """What the broker retains under ``topic_filter``. The broker sends it right after the
        SUBACK; a second SUBACK on the same connection follows it, so then it is all here."""
        found: dict[str, bytes] = {}
        self.subscribe(
            topic_filter, lambda m: found.update({m.topic: m.payload}) if m.retain else None
        )
        self._subscribe(self.responses, 1)
        with self._lock:
            self._handlers = [(f, h) for f, h in self._handlers if f != topic_filter]
        self._client.unsubscribe(topic_filter)
        return {topic: body for topic, body in found.items() if body}

    def _subscribe(self, topic_filter: str, qos: int) -> None:
        done = threading.Event()
        with self._lock:
            rc, mid = self._client.subscribe(topic_filter, qos)
            self._done[mid] = done
        if rc != 0 or not done.wait(self.timeout_s):
            raise CliError(
                f"the broker did not answer the subscription to {topic_filter}", TIMED_OUT
            )
        codes = self._codes.pop(mid, [])
        if any(code >= 0x80 for code in codes):
            raise CliError(f"the broker refused the subscription to {topic_filter}", FAILED)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack_code = int(reason.value)
        self._connack_reason = str(reason)
        self._connack.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        with self._lock:
            self._codes[mid] = [int(r.value) for r in reasons]
            done = self._done.pop(mid, None)
        if done is not None:
            done.set()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            handlers = [h for f, h in self._handlers if paho.topic_matches_sub(f, message.topic)]
        for handler in handlers:
            handler(message)


def _json_properties() -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    return properties


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode("utf-8", "replace")
