"""Fetches a model file to a staging path: streamed, bounded, retried, resumable.

Runs in a worker thread (blocking I/O, ``requests``), never on the event loop, and never holds
the file in memory. Each failure becomes a ``ModelUpdateError`` with its own code:

- HTTPS always; ``file://`` for local paths; plain HTTP only when the device allows it
  (``MODEL_ALLOW_HTTP``, for local development).
- Before any byte is written: the size cap (``MODEL_MAX_BYTES``) against the stated size or
  Content-Length, and free disk against the reserve (``MODEL_MIN_FREE_BYTES``).
- Connect and read timeouts; network errors, timeouts, 408/429/5xx and bodies that end early
  are retried with exponential backoff and full jitter. A retry resumes with ``Range`` when
  the server advertised ``Accept-Ranges: bytes``, and starts over otherwise.
- 401/403 are permanent: ``sas_expired`` when the URL's SAS expiry (``se``) has passed, else
  ``access_denied``. 404 is ``not_found``. Other 4xx are ``http_error``.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import certifi
import requests
from requests.adapters import HTTPAdapter

from classifier.errors import ModelUpdateError, UpdateErrorCode

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]  # (bytes received, total bytes if known)

_CHUNK_BYTES = 1 << 20
_QUERY = re.compile(r"\?[^\s'\")]*")
_RETRIABLE_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class DownloadPolicy:
    allow_http: bool = False
    max_bytes: int = 1 << 30
    min_free_bytes: int = 256 << 20  # disk that must stay free after the download
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    attempts: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    ca_file: Path | None = None  # trusted in addition to the system's CAs


class DownloadCancelledError(Exception):
    """A newer desired model replaced this one while it was downloading."""


class _RetryableError(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, code: UpdateErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def download(
    url: str,
    dest: Path,
    policy: DownloadPolicy,
    expected_size: int | None = None,
    progress: Progress | None = None,
    cancelled: threading.Event | None = None,
) -> int:
    """Writes the file at ``url`` to ``dest`` (resuming a partial ``dest``); returns its size."""
    cancelled = cancelled or threading.Event()
    report = progress or (lambda received, total: None)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if expected_size is not None and expected_size > policy.max_bytes:
        raise _too_large(expected_size, policy)
    if scheme == "file":
        return _copy_file(Path(unquote(parts.path)), dest, policy, expected_size, report, cancelled)
    if scheme == "http" and not policy.allow_http:
        raise ModelUpdateError(
            UpdateErrorCode.INSECURE_URL,
            "plain http is refused on this device (MODEL_ALLOW_HTTP is off); use https",
        )
    if scheme not in ("http", "https"):
        raise ModelUpdateError(UpdateErrorCode.UNSUPPORTED_URL, f"unsupported scheme {scheme!r}")
    with requests.Session() as session:
        if policy.ca_file is not None:
            session.mount("https://", _ExtraCaAdapter(policy.ca_file))
        last: _RetryableError | None = None
        for attempt in range(policy.attempts):
            if attempt:
                delay = random.uniform(0, min(policy.backoff_max_s, policy.backoff_s * 2**attempt))
                log.info(
                    "download attempt %d failed (%s); retrying in %.1f s", attempt, last, delay
                )
                if cancelled.wait(delay):
                    break
            try:
                return _attempt(session, url, dest, policy, expected_size, report, cancelled)
            except _RetryableError as e:
                last = e
        if cancelled.is_set():
            raise _cancelled()
        assert last is not None
        raise ModelUpdateError(last.code, f"{last} (after {policy.attempts} attempts)")


class _ExtraCaAdapter(HTTPAdapter):
    """Trusts the usual CAs plus the device's own (``MODEL_DOWNLOAD_CA_FILE``): a private
    mirror, Azure Blob Storage on IoT Edge, or the simulator's storage emulator."""

    def __init__(self, ca_file: Path) -> None:
        self._context = ssl.create_default_context(cafile=certifi.where())
        self._context.load_verify_locations(cafile=str(ca_file))
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def _attempt(
    session: requests.Session,
    url: str,
    dest: Path,
    policy: DownloadPolicy,
    expected_size: int | None,
    report: Progress,
    cancelled: threading.Event,
) -> int:
    have = dest.stat().st_size if dest.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = (policy.connect_timeout_s, policy.read_timeout_s)
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            offset = _offset(response, have, url)
            if offset < 0:
                dest.unlink(missing_ok=True)
                raise _RetryableError(
                    UpdateErrorCode.DOWNLOAD_FAILED, "range not satisfiable; restarting"
                )
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else expected_size
            if total is not None and total > policy.max_bytes:
                raise _too_large(total, policy)
            _check_disk(dest.parent, (total or 0) - offset, policy)
            with dest.open("r+b" if offset else "wb") as out:
                out.seek(offset)
                out.truncate()
                received = _stream(response, out, offset, total, policy, report, cancelled)
    except requests.Timeout as e:
        raise _RetryableError(
            UpdateErrorCode.DOWNLOAD_TIMEOUT, f"timed out: {_without_query(e)}"
        ) from e
    except (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as e:
        raise _RetryableError(
            UpdateErrorCode.TRUNCATED, f"the body ended early: {_without_query(e)}"
        ) from e
    except requests.ConnectionError as e:
        # A connection reset mid-body is a truncation; one that never connected is not.
        code = UpdateErrorCode.TRUNCATED if dest.exists() and dest.stat().st_size > have else None
        raise _RetryableError(
            code or UpdateErrorCode.DOWNLOAD_FAILED, f"connection failed: {_without_query(e)}"
        ) from e
    except requests.RequestException as e:
        raise ModelUpdateError(
            UpdateErrorCode.DOWNLOAD_FAILED, f"request failed: {_without_query(e)}"
        ) from e
    if total is not None and received < total:
        raise _RetryableError(UpdateErrorCode.TRUNCATED, f"got {received} of {total} bytes")
    return received


def _offset(response: requests.Response, have: int, url: str) -> int:
    """Where this response's body starts in the file (-1: start over); raises for refusals."""
    status = response.status_code
    if status == 206:
        content_range = response.headers.get("Content-Range", "")
        if content_range.startswith(f"bytes {have}-"):
            return have
        raise _RetryableError(
            UpdateErrorCode.DOWNLOAD_FAILED, f"unexpected Content-Range {content_range!r}"
        )
    if status == 200:
        return 0  # a full body: the server ignored Range (or none was sent)
    if status == 416:
        # The partial file is not a prefix of what the server has now.
        return -1
    if status in (401, 403):
        if _sas_expired(url):
            raise ModelUpdateError(
                UpdateErrorCode.SAS_EXPIRED,
                f"HTTP {status}: the URL's shared access signature expired at {_sas_expiry(url)}",
            )
        raise ModelUpdateError(UpdateErrorCode.ACCESS_DENIED, f"HTTP {status}: {_reason(response)}")
    if status == 404:
        raise ModelUpdateError(UpdateErrorCode.NOT_FOUND, f"HTTP 404: {_reason(response)}")
    if status in _RETRIABLE_STATUS:
        raise _RetryableError(
            UpdateErrorCode.DOWNLOAD_FAILED, f"HTTP {status}: {_reason(response)}"
        )
    raise ModelUpdateError(UpdateErrorCode.HTTP_ERROR, f"HTTP {status}: {_reason(response)}")


def _stream(
    response: requests.Response,
    out: BinaryIO,
    offset: int,
    total: int | None,
    policy: DownloadPolicy,
    report: Progress,
    cancelled: threading.Event,
) -> int:
    received = offset
    if offset and response.status_code == 206:
        log.info("resuming the download at byte %d", offset)
    for chunk in response.iter_content(_CHUNK_BYTES):
        if cancelled.is_set():
            raise _cancelled()
        received += len(chunk)
        if received > policy.max_bytes or (total is not None and received > total):
            raise _too_large(received, policy)
        try:
            out.write(chunk)
        except OSError as e:
            raise _disk_full(e) from e
        report(received, total)
    return received


def _copy_file(
    source: Path,
    dest: Path,
    policy: DownloadPolicy,
    expected_size: int | None,
    report: Progress,
    cancelled: threading.Event,
) -> int:
    try:
        size = source.stat().st_size
        if not source.is_file():
            raise ModelUpdateError(UpdateErrorCode.NOT_FOUND, f"{source} is not a file")
    except FileNotFoundError:
        raise ModelUpdateError(UpdateErrorCode.NOT_FOUND, f"no file at {source}") from None
    except PermissionError as e:
        raise ModelUpdateError(UpdateErrorCode.ACCESS_DENIED, str(e)) from e
    if size > policy.max_bytes:
        raise _too_large(size, policy)
    _check_disk(dest.parent, size, policy)
    received = 0
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(_CHUNK_BYTES):
            if cancelled.is_set():
                raise _cancelled()
            received += len(chunk)
            if received > policy.max_bytes:
                raise _too_large(received, policy)
            try:
                out.write(chunk)
            except OSError as e:
                raise _disk_full(e) from e
            report(received, size)
    return received


def _check_disk(directory: Path, needed: int, policy: DownloadPolicy) -> None:
    free = shutil.disk_usage(directory).free
    if free - max(needed, 0) < policy.min_free_bytes:
        raise ModelUpdateError(
            UpdateErrorCode.INSUFFICIENT_DISK,
            f"{max(needed, 0)} bytes to download and {policy.min_free_bytes} to keep free, "
            f"but only {free} bytes are free in {directory}",
        )


def _sas_expiry(url: str) -> datetime | None:
    values = parse_qs(urlsplit(url).query).get("se")
    if not values:
        return None
    try:
        moment = datetime.fromisoformat(values[0].replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _sas_expired(url: str) -> bool:
    expiry = _sas_expiry(url)
    return expiry is not None and expiry <= datetime.now(UTC)


def _reason(response: requests.Response) -> str:
    # Azure Storage names the cause in a header; the body may hold a SAS-bearing URL, so only
    # the header and the status text are ever reported.
    code = response.headers.get("x-ms-error-code")
    return f"{response.reason or ''}{f' ({code})' if code else ''}".strip()


def _without_query(error: Exception) -> str:
    """The error's text with URL queries cut: requests quotes the URL, and a SAS query is a
    secret that must not reach the logs or the reported properties."""
    return _QUERY.sub("?<query removed>", str(error))


def _too_large(size: int, policy: DownloadPolicy) -> ModelUpdateError:
    return ModelUpdateError(
        UpdateErrorCode.TOO_LARGE,
        f"the model is at least {size} bytes; this device accepts at most {policy.max_bytes}",
    )


def _disk_full(e: OSError) -> ModelUpdateError:
    return ModelUpdateError(UpdateErrorCode.INSUFFICIENT_DISK, f"writing the model failed: {e}")


def _cancelled() -> DownloadCancelledError:
    return DownloadCancelledError("a newer desired model replaced this one")
