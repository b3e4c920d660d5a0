"""A local image registry for the simulator: the CNCF Distribution registry, on loopback.

Devices pull their modules' images with the deployment's ``registryCredentials``, as from an
Azure Container Registry: the registry here (Debian's ``docker-registry`` package) listens
over HTTPS with a certificate from the simulator's CA, on the simulator's loopback address,
and asks for basic auth with a user and password generated per state directory (htpasswd,
bcrypt, the only hash Distribution accepts). Its port is kept in the state directory too, so
a restarted simulator serves the very image names its stored deployments hold.

``python -m simulator env`` exports ``CONTAINER_REGISTRY_SERVER``, ``..._USERNAME`` and
``..._PASSWORD`` for ``cloud_tools build --push`` and genconfig, as iotedgedev's ``.env`` does.
The process is stopped by its PID, group and all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from simulator.certs import ensure_certificates
from simulator.child_processes import PID_SUFFIX, PidFile, dies_with_parent, terminate_group
from simulator.errors import SimulatorError

log = logging.getLogger(__name__)

REGISTRY_BINARY = "docker-registry"
USERNAME = "simulator"
_START_TIMEOUT_S = 30.0


class RegistryUnavailableError(SimulatorError):
    """The Distribution registry is not installed."""


def find_registry() -> Path:
    found = shutil.which(REGISTRY_BINARY)
    if found is None:
        raise RegistryUnavailableError(
            "the image registry (Debian's docker-registry) is not installed: "
            "run scripts/containers.sh up"
        )
    return Path(found)


@dataclass(frozen=True)
class RegistryEndpoint:
    host: str
    port: int
    username: str
    password: str

    @property
    def server(self) -> str:
        """What image names start with, and ``registryCredentials.*.address``."""
        return f"{self.host}:{self.port}"

    def variables(self) -> dict[str, str]:
        """iotedgedev's ``.env`` variables for this registry."""
        return {
            "CONTAINER_REGISTRY_SERVER": self.server,
            "CONTAINER_REGISTRY_USERNAME": self.username,
            "CONTAINER_REGISTRY_PASSWORD": self.password,
        }


class LocalRegistry:
    """``__init__`` only assigns; :meth:`start` runs the registry, :meth:`stop` ends it."""

    def __init__(self, workspace: Path, certs_dir: Path, host: str) -> None:
        self.workspace = workspace
        self.certs_dir = certs_dir
        self.host = host
        self._process: asyncio.subprocess.Process | None = None
        self._endpoint: RegistryEndpoint | None = None
        # The registry dies with the simulator, and a pid file lets the next run stop one
        # that a killed simulator left (simulator.child_processes).
        self._pid_file = PidFile(workspace / f"registry{PID_SUFFIX}")

    @property
    def endpoint(self) -> RegistryEndpoint:
        if self._endpoint is None:
            raise SimulatorError("the image registry is not running")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> RegistryEndpoint:
        binary = find_registry()
        self.workspace.mkdir(mode=0o700, parents=True, exist_ok=True)
        certs = ensure_certificates(self.certs_dir, [self.host], server="registry")
        password = _secret(self.workspace / "password")
        port = _kept_port(self.workspace / "port", self.host)
        htpasswd = self.workspace / "htpasswd"
        digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        _write_private(htpasswd, f"{USERNAME}:{digest}\n")
        config = self.workspace / "config.json"  # YAML is a superset of JSON
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {
                        "filesystem": {"rootdirectory": str(self.workspace / "storage")},
                        "delete": {"enabled": True},
                    },
                    "http": {
                        "addr": f"{self.host}:{port}",
                        "tls": {
                            "certificate": str(certs.server_cert_path),
                            "key": str(certs.server_key_path),
                        },
                    },
                    "auth": {"htpasswd": {"realm": "simulator", "path": str(htpasswd)}},
                },
                indent=2,
            )
        )
        log_path = self.workspace / "registry.log"
        with log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                str(binary),
                "serve",
                str(config),
                stdout=log_file,
                stderr=log_file,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                start_new_session=True,
                preexec_fn=dies_with_parent(),
            )
        self._pid_file.write(self._process.pid)
        self._endpoint = RegistryEndpoint(self.host, port, USERNAME, password)
        try:
            await self._wait_ready(port, log_path, certs.client_ssl_context())
        except BaseException:
            await self.stop()
            raise
        log.info("registry (pid %d) serving %s", self._process.pid, self._endpoint.server)
        return self._endpoint

    async def _wait_ready(self, port: int, log_path: Path, context: ssl.SSLContext) -> None:
        """Ready once ``GET /v2/`` answers 401 (auth asked) over verified TLS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        assert self._process is not None
        request = f"GET /v2/ HTTP/1.1\r\nHost: {self.host}:{port}\r\nConnection: close\r\n\r\n"
        while True:
            if self._process.returncode is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise SimulatorError(f"the registry exited with {self._process.returncode}: {tail}")
            try:
                reader, writer = await asyncio.open_connection(self.host, port, ssl=context)
                try:
                    writer.write(request.encode())
                    status = await asyncio.wait_for(reader.readline(), 5.0)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError, ssl.SSLError):
                        await writer.wait_closed()
            except (OSError, TimeoutError):
                if loop.time() > deadline:
                    raise SimulatorError(f"the registry did not listen on {port} in time") from None
                await asyncio.sleep(0.1)
                continue
            if b" 401 " in status:
                return
            raise SimulatorError(f"the registry answered {status!r} where 401 was expected")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await terminate_group(process)
        self._pid_file.remove()


def _secret(path: Path) -> str:
    if not path.exists():
        _write_private(path, base64.urlsafe_b64encode(secrets.token_bytes(24)).decode())
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start, never world-readable for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _kept_port(path: Path, host: str) -> int:
    """The port this state directory's registry had, while it is free; a new one otherwise."""
    if path.exists():
        port = int(path.read_text().strip())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                raise SimulatorError(
                    f"port {port} on {host}, where this simulator's registry listens, is taken"
                ) from None
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port = int(s.getsockname()[1])
    path.write_text(str(port))
    return port
