"""Eclipse Mosquitto 2 (Debian's package) as a local MQTT v5 broker for the modules
(docs/mqtt.md), run by the broker tests and ``scripts/demo.sh --mqtt``: TLS on a random
loopback address, password authentication, per-client ACLs and persistence, stopped by PID.

``.ci/run`` installs the package; elsewhere the tests that need it skip.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from simulator.certs import ensure_certificates
from simulator.mqtt.testing import random_loopback_host

PREFIX = "edge"
MOSQUITTO = "/usr/sbin/mosquitto"

# Each module's user may touch its own topics only; %u is the user (the module's name), %c
# the client id (one per replica): no replica reads another's method calls or writes another's
# reported state.
ACL = f"""
user framesource
topic write {PREFIX}/streams/frames/#

user classifier
topic read {PREFIX}/streams/frames/#
topic write {PREFIX}/streams/predictions/#
topic write {PREFIX}/streams/errors/#
topic write {PREFIX}/callers/#

user operator
topic readwrite {PREFIX}/#

pattern read {PREFIX}/modules/%u/desired
pattern read {PREFIX}/modules/%u/methods/%c/#
pattern read {PREFIX}/modules/%u/methods/any/#
pattern write {PREFIX}/modules/%u/reported/%c
"""

USERS = {"framesource": "camera-secret", "classifier": "model-secret", "operator": "op-secret"}


def missing() -> str | None:
    if not Path(MOSQUITTO).exists() or shutil.which("mosquitto_passwd") is None:
        return "Eclipse Mosquitto is not installed (apt-get install mosquitto)"
    return None


@dataclass
class Mosquitto:
    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def ca_path(self) -> Path:
        return self.directory / "certs" / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    @classmethod
    def start(cls, directory: Path, users: Mapping[str, str] = USERS, acl: str = ACL) -> Mosquitto:
        host = random_loopback_host()
        directory.mkdir(parents=True, exist_ok=True)
        certs = ensure_certificates(directory / "certs", [host])
        passwords = directory / "passwd"
        passwords.write_text("")
        for user, password in users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(passwords), user, password],
                check=True,
                capture_output=True,
            )
        (directory / "acl").write_text(acl)
        (directory / "data").mkdir(exist_ok=True)
        port = _free_port(host)
        config = directory / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    "allow_anonymous false",
                    f"password_file {passwords}",
                    f"acl_file {directory / 'acl'}",
                    "persistence true",
                    f"persistence_location {directory / 'data'}/",
                    # No limit: a shared subscription queues a frame for one replica, and a
                    # full queue would drop it.
                    "max_queued_messages 0",
                    f"log_dest file {directory / 'mosquitto.log'}",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    f"listener {port} {host}",
                    f"cafile {certs.ca_cert_path}",
                    f"certfile {certs.server_cert_path}",
                    f"keyfile {certs.server_key_path}",
                    "",
                ]
            )
        )
        broker = cls(host, port, directory, _launch(config))
        broker.wait_ready()
        return broker

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        """SIGTERM by PID: mosquitto writes its persistence file on the way out."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.process = _launch(self.directory / "mosquitto.conf")
        self.wait_ready()

    def module_env(self, user: str, client_id: str, **extra: str) -> dict[str, str]:
        """The variables a module needs to reach this broker as ``user``."""
        return {
            "HUB": "mqtt",
            "MQTT_HOST": self.host,
            "MQTT_PORT": str(self.port),
            "MQTT_CA_FILE": str(self.ca_path),
            "MQTT_USERNAME": user,
            "MQTT_PASSWORD": USERS.get(user, ""),
            "MQTT_MODULE": user,
            "MQTT_CLIENT_ID": client_id,
            "MQTT_TOPIC_PREFIX": PREFIX,
        } | extra


def _launch(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
