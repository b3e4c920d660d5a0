"""The model downloader against a real loopback HTTP server and file:// URLs."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from classifier.errors import ModelUpdateError, UpdateErrorCode
from classifier.model_update.download import (
    DownloadCancelledError,
    DownloadPolicy,
    download,
)
from tests.support.file_server import FileServer

DATA = os.urandom(3 * 1024 * 1024 + 123)  # several chunks, not a whole number of them
FAST = DownloadPolicy(allow_http=True, attempts=3, backoff_s=0.01, min_free_bytes=0)


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer({"/m.onnx": DATA}).running() as running:
        yield running


def _code(excinfo: pytest.ExceptionInfo[ModelUpdateError]) -> UpdateErrorCode:
    return excinfo.value.code


def test_a_file_downloads_whole_and_reports_progress(server: FileServer, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    size = download(
        server.url("/m.onnx"), tmp_path / "m.part", FAST, None, lambda r, t: seen.append((r, t))
    )
    assert size == len(DATA)
    assert (tmp_path / "m.part").read_bytes() == DATA
    assert seen[-1] == (len(DATA), len(DATA))
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))


def test_a_cut_body_resumes_with_a_range_request(server: FileServer, tmp_path: Path) -> None:
    server.behaviour.truncate_first, server.behaviour.truncate_at = 1, 1_500_000
    download(server.url("/m.onnx"), tmp_path / "m.part", FAST)
    assert (tmp_path / "m.part").read_bytes() == DATA
    ranges = [r for _, r in server.behaviour.requests]
    assert ranges[0] is None
    assert ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:].rstrip("-")) >= 1_000_000  # resumed, not restarted


def test_a_server_without_ranges_restarts_from_the_first_byte(
    server: FileServer, tmp_path: Path
) -> None:
    server.behaviour.ranges = False
    server.behaviour.truncate_first, server.behaviour.truncate_at = 1, 1_000_000
    download(server.url("/m.onnx"), tmp_path / "m.part", FAST)
    assert (tmp_path / "m.part").read_bytes() == DATA


def test_a_body_cut_on_every_attempt_is_truncated(server: FileServer, tmp_path: Path) -> None:
    server.behaviour.truncate_first, server.behaviour.truncate_at = 99, 1000
    server.behaviour.ranges = False
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/m.onnx"), tmp_path / "m.part", FAST)
    assert _code(e) is UpdateErrorCode.TRUNCATED
    assert len(server.behaviour.requests) == FAST.attempts


def test_server_errors_are_retried_then_succeed(server: FileServer, tmp_path: Path) -> None:
    server.behaviour.fail_first = 2
    download(server.url("/m.onnx"), tmp_path / "m.part", FAST)
    assert len(server.behaviour.requests) == 3


def test_server_errors_on_every_attempt_fail_the_download(
    server: FileServer, tmp_path: Path
) -> None:
    server.behaviour.fail_first = 99
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/m.onnx"), tmp_path / "m.part", FAST)
    assert _code(e) is UpdateErrorCode.DOWNLOAD_FAILED
    assert "503" in str(e.value)


def test_not_found_is_its_own_error_and_not_retried(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/missing.onnx"), tmp_path / "m.part", FAST)
    assert _code(e) is UpdateErrorCode.NOT_FOUND
    assert len(server.behaviour.requests) == 1


def test_a_refused_sas_whose_expiry_passed_is_sas_expired(
    server: FileServer, tmp_path: Path
) -> None:
    server.behaviour.status["/m.onnx"] = 403
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(ModelUpdateError) as e:
        download(server.url(f"/m.onnx?sv=2024&se={past}&sig=x"), tmp_path / "m.part", FAST)
    assert _code(e) is UpdateErrorCode.SAS_EXPIRED


def test_a_refusal_with_a_valid_sas_is_access_denied(server: FileServer, tmp_path: Path) -> None:
    server.behaviour.status["/m.onnx"] = 403
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(ModelUpdateError) as e:
        download(server.url(f"/m.onnx?se={future}&sig=x"), tmp_path / "m.part", FAST)
    assert _code(e) is UpdateErrorCode.ACCESS_DENIED


def test_plain_http_is_refused_unless_the_device_allows_it(
    server: FileServer, tmp_path: Path
) -> None:
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/m.onnx"), tmp_path / "m.part", DownloadPolicy())
    assert _code(e) is UpdateErrorCode.INSECURE_URL
    assert server.behaviour.requests == []


def test_a_file_larger_than_the_cap_is_refused_before_it_is_written(
    server: FileServer, tmp_path: Path
) -> None:
    policy = DownloadPolicy(allow_http=True, max_bytes=1_000_000, min_free_bytes=0)
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/m.onnx"), tmp_path / "m.part", policy)
    assert _code(e) is UpdateErrorCode.TOO_LARGE
    assert not (tmp_path / "m.part").exists()


def test_a_stated_size_over_the_cap_is_refused_without_a_request(
    server: FileServer, tmp_path: Path
) -> None:
    policy = DownloadPolicy(allow_http=True, max_bytes=1000, min_free_bytes=0)
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/m.onnx"), tmp_path / "m.part", policy, expected_size=5000)
    assert _code(e) is UpdateErrorCode.TOO_LARGE
    assert server.behaviour.requests == []


def test_a_download_that_would_eat_the_disk_reserve_is_refused(
    server: FileServer, tmp_path: Path
) -> None:
    policy = DownloadPolicy(allow_http=True, min_free_bytes=1 << 62)
    with pytest.raises(ModelUpdateError) as e:
        download(server.url("/m.onnx"), tmp_path / "m.part", policy)
    assert _code(e) is UpdateErrorCode.INSUFFICIENT_DISK
    assert "bytes are free" in e.value.reason


def test_file_urls_are_copied_with_the_same_checks(tmp_path: Path) -> None:
    source = tmp_path / "source.onnx"
    source.write_bytes(DATA)
    assert download(source.as_uri(), tmp_path / "m.part", DownloadPolicy(min_free_bytes=0)) == len(
        DATA
    )
    with pytest.raises(ModelUpdateError) as e:
        download((tmp_path / "nope.onnx").as_uri(), tmp_path / "n.part", DownloadPolicy())
    assert _code(e) is UpdateErrorCode.NOT_FOUND


def test_unknown_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUpdateError) as e:
        download("ftp://example.invalid/m.onnx", tmp_path / "m.part", DownloadPolicy())
    assert _code(e) is UpdateErrorCode.UNSUPPORTED_URL


def test_a_connection_refused_is_retried_then_download_failed(tmp_path: Path) -> None:
    # A port nothing listens on: the server above is gone once its context ends.
    with FileServer({}).running() as gone:
        url = gone.url("/m.onnx")
    with pytest.raises(ModelUpdateError) as e:
        download(url, tmp_path / "m.part", FAST)
    assert _code(e) is UpdateErrorCode.DOWNLOAD_FAILED


def test_a_cancelled_download_stops_between_chunks(server: FileServer, tmp_path: Path) -> None:
    cancel = threading.Event()

    def progress(received: int, total: int | None) -> None:
        cancel.set()

    with pytest.raises(DownloadCancelledError):
        download(server.url("/m.onnx"), tmp_path / "m.part", FAST, None, progress, cancel)


def test_errors_never_quote_the_urls_query(tmp_path: Path) -> None:
    with FileServer({}).running() as gone:
        url = gone.url("/m.onnx?sv=2024&se=2099-01-01T00:00:00Z&sig=SECRETSIGNATURE")
    with pytest.raises(ModelUpdateError) as e:
        download(url, tmp_path / "m.part", FAST)
    assert "Max retries" in e.value.reason or "connection" in e.value.reason
    assert "SECRETSIGNATURE" not in str(e.value)
