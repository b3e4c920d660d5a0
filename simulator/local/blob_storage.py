"""A real Blob Storage emulator for the simulator: Azurite (from the npm registry), on loopback.

Operators upload models to Azure Blob Storage and hand devices read-only SAS URLs; Azurite
speaks the same REST API, validates SAS tokens (expiry included) and serves ``Range``
requests, so the module's downloader and the operator's azure-storage-blob code run against it
unchanged. It listens over HTTPS with a certificate from the simulator's CA, which modules
trust through ``MODEL_DOWNLOAD_CA_FILE``, and uses an account whose key is generated per
state directory (not the published development key), so secrets behave like secrets.

``scripts/bootstrap.sh`` installs Azurite into ``tools/node`` (``npm ci``); ``find_azurite``
says where it is or why it is not there. The process is stopped by its PID, group and all.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import shutil
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from simulator.child_processes import PID_SUFFIX, PidFile, dies_with_parent, terminate_group
from simulator.errors import SimulatorError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO / "tools" / "node" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "simstore"
_START_TIMEOUT_S = 60.0


class BlobStorageUnavailableError(SimulatorError):
    """Azurite or Node.js is not installed."""


def find_azurite() -> Path:
    if shutil.which("node") is None:
        raise BlobStorageUnavailableError("Node.js is not installed (Azurite needs it)")
    if not AZURITE_BIN.exists():
        raise BlobStorageUnavailableError(
            f"Azurite is not installed at {AZURITE_BIN.relative_to(REPO)}: run scripts/bootstrap.sh"
        )
    return AZURITE_BIN


@dataclass(frozen=True)
class BlobEndpoint:
    host: str
    port: int
    account: str
    key: str  # base64

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/{self.account}"

    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.url};"
        )


class AzuriteServer:
    """``__init__`` only assigns; ``start`` launches the process and waits for TLS to answer."""

    def __init__(self, workspace: Path, host: str, cert: Path, key: Path, port: int = 0) -> None:
        self.workspace = workspace
        self.host = host
        self.cert = cert
        self.key = key
        self.requested_port = port
        self._process: asyncio.subprocess.Process | None = None
        self._endpoint: BlobEndpoint | None = None
        self._pid_file = PidFile(workspace / f"azurite{PID_SUFFIX}")

    @property
    def endpoint(self) -> BlobEndpoint:
        if self._endpoint is None:
            raise SimulatorError("Azurite is not running")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> BlobEndpoint:
        binary = find_azurite()
        self.workspace.mkdir(parents=True, exist_ok=True)
        if self.requested_port:
            # Azurite on a taken port exits, saying so only in its log, while whatever holds
            # the port (an earlier Azurite, say) would answer in its place.
            _require_free(self.host, self.requested_port)
        port = self.requested_port or _free_port(self.host)
        account_key = _account_key(self.workspace)
        env = dict(os.environ, AZURITE_ACCOUNTS=f"{ACCOUNT}:{account_key}")
        log_path = self.workspace / "azurite.log"
        with log_path.open("ab") as log_file:
            self._process = await asyncio.create_subprocess_exec(
                str(binary),
                "--blobHost",
                self.host,
                "--blobPort",
                str(port),
                "--location",
                str(self.workspace),
                "--cert",
                str(self.cert),
                "--key",
                str(self.key),
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--loose",
                stdout=log_file,
                stderr=log_file,
                env=env,
                start_new_session=True,  # its own group: stop() ends node and its children
                preexec_fn=dies_with_parent(),
            )
        self._pid_file.write(self._process.pid)
        self._endpoint = BlobEndpoint(self.host, port, ACCOUNT, account_key)
        try:
            await self._wait_ready(port, log_path)
        except BaseException:
            await self.stop()
            raise
        log.info("Azurite (pid %d) serving %s", self._process.pid, self._endpoint.url)
        return self._endpoint

    async def _wait_ready(self, port: int, log_path: Path) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only "is it listening"; clients verify for real
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        assert self._process is not None
        while True:
            if self._process.returncode is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise SimulatorError(f"Azurite exited with {self._process.returncode}: {tail}")
            try:
                _, writer = await asyncio.open_connection(self.host, port, ssl=context)
            except OSError:
                if loop.time() > deadline:
                    raise SimulatorError(f"Azurite did not listen on {port} in time") from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await terminate_group(process)
        self._pid_file.remove()


def _require_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As a server binds (Node does too): a closed connection's TIME_WAIT does not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise SimulatorError(
                f"the Blob Storage port {host}:{port} is taken ({e.strerror}): stop what holds "
                "it, or choose another with --storage-port (0: any free port)"
            ) from None


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _account_key(workspace: Path) -> str:
    """The account key, kept with the data so a restarted emulator accepts old SAS URLs."""
    path = workspace / "account.key"
    if not path.exists():
        path.write_text(base64.b64encode(secrets.token_bytes(64)).decode())
        path.chmod(0o600)
    return path.read_text().strip()
