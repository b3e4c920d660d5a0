"""Which transport a module uses, and how it reaches an MQTT v5 broker (docs/mqtt.md).

``HUB`` picks the transport: ``edgehub`` (the default: azure-iot-device, IoT Edge's own
variables) or ``mqtt`` (any MQTT v5 broker, read from the ``MQTT_*`` variables below).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_module.env import EnvReader, boolean, choice, positive
from edge_module.errors import SettingsError

HUB_KINDS = ("edgehub", "mqtt")
# A session the broker keeps for a replica that went away: long enough for a pod to be
# rescheduled, short enough that a replica removed for good does not hold frames for ever.
DEFAULT_SESSION_EXPIRY_S = 3600


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    module: str  # the module's name: its topics and its shared-subscription group
    client_id: str  # one per replica; stable across restarts, so its session resumes
    topic_prefix: str = "edge"
    share_group: str = ""  # empty: the module's name
    ca_file: Path | None = None  # None: the system's trust store
    cert_file: Path | None = None  # a client certificate, with key_file
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    tls: bool = True
    # MQTT v5 enhanced authentication, e.g. IoT Operations' K8S-SAT with a service-account
    # token file (read at each connect, as the kubelet rotates it).
    auth_method: str | None = None
    auth_data_file: Path | None = None
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    # An outcome that never comes (a frame id the module rewrote, a redelivery it skipped)
    # must not hold a slot of the receive window for ever: acknowledged after this long.
    ack_timeout_s: float = 120.0
    # Messages held at most beyond the receive window (see mqtt_hub: a resumed session).
    intake_backlog: int = 1024
    keepalive_s: int = 30
    connect_timeout_s: float = 30.0

    @property
    def group(self) -> str:
        return self.share_group or self.module

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MqttSettings:
        reader = EnvReader(env)
        get = reader.get
        module = reader.text("MQTT_MODULE", (env.get("IOTEDGE_MODULEID") or "").strip())
        if not module:
            reader.problems.append("MQTT_MODULE is required (the module's name)")
        host = reader.text("MQTT_HOST", "")
        if not host:
            reader.problems.append("MQTT_HOST is required (the broker's host name or address)")
        tls = get("MQTT_TLS", boolean, True)
        password = env.get("MQTT_PASSWORD") or None
        password_file = _path(env.get("MQTT_PASSWORD_FILE"))
        if password_file is not None:
            try:
                password = password_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                reader.problems.append(f"MQTT_PASSWORD_FILE cannot be read: {e}")
        cert_file, key_file = _path(env.get("MQTT_CERT_FILE")), _path(env.get("MQTT_KEY_FILE"))
        if (cert_file is None) != (key_file is None):
            reader.problems.append("MQTT_CERT_FILE and MQTT_KEY_FILE go together")
        settings = cls(
            host=host,
            port=get("MQTT_PORT", int, 8883 if tls else 1883, lambda v: 0 < v < 65536),
            module=module,
            client_id=reader.text("MQTT_CLIENT_ID", f"{module}-{socket.gethostname()}"),
            topic_prefix=reader.text("MQTT_TOPIC_PREFIX", cls.topic_prefix).strip("/"),
            share_group=reader.text("MQTT_SHARE_GROUP", ""),
            ca_file=_path(env.get("MQTT_CA_FILE")),
            cert_file=cert_file,
            key_file=key_file,
            username=(env.get("MQTT_USERNAME") or "").strip() or None,
            password=password,
            tls=tls,
            auth_method=(env.get("MQTT_AUTH_METHOD") or "").strip() or None,
            auth_data_file=_path(env.get("MQTT_AUTH_DATA_FILE")),
            session_expiry_s=get(
                "MQTT_SESSION_EXPIRY_S", int, DEFAULT_SESSION_EXPIRY_S, lambda v: v >= 0
            ),
            ack_timeout_s=get("MQTT_ACK_TIMEOUT_S", float, cls.ack_timeout_s, positive),
            intake_backlog=get("MQTT_INTAKE_BACKLOG", int, cls.intake_backlog, positive),
            keepalive_s=get("MQTT_KEEPALIVE_S", int, cls.keepalive_s, lambda v: 5 <= v <= 3600),
        )
        # Each is one topic level (the prefix may be several): a wildcard would widen filters.
        levels = {"MQTT_MODULE": module, "MQTT_CLIENT_ID": settings.client_id}
        for name, value in levels.items():
            if any(c in value for c in "/+#"):
                reader.problems.append(f"{name}={value!r} may not contain '/', '+' or '#'")
        if any(c in settings.topic_prefix for c in "+#$"):
            reader.problems.append("MQTT_TOPIC_PREFIX may not contain '+', '#' or '$'")
        if reader.problems:
            raise SettingsError("; ".join(reader.problems))
        return settings


def hub_kind(env: Mapping[str, str]) -> str:
    """``HUB``: which transport the module speaks."""
    reader = EnvReader(env)
    kind = reader.get("HUB", choice(HUB_KINDS), "edgehub")
    if reader.problems:
        raise SettingsError("; ".join(reader.problems))
    return kind


def _path(raw: str | None) -> Path | None:
    value = (raw or "").strip()
    return Path(value) if value else None
