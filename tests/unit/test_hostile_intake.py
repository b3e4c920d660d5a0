"""Hostile and broken messages at intake: each class gets its specific code, or is read
safely, and nothing but ``FrameError`` leaves ``frame_requests``."""

from __future__ import annotations

import base64
import json

import pytest

from classifier.bounded_text import MAX_ID_CHARS, MAX_REASON_CHARS, bounded_text
from classifier.errors import FrameError, FrameErrorCode
from classifier.intake import frame_requests
from classifier.intake.message_meta import frame_meta_from, normalise_time
from edge_module.hub import InboundMessage

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def message(
    body: bytes,
    content_type: str | None = None,
    content_encoding: str | None = None,
    message_id: str = "m1",
    **props: str,
) -> InboundMessage:
    return InboundMessage("frames", body, content_type, content_encoding, message_id, None, props)


def code_of(msg: InboundMessage, max_entries: int = 32) -> FrameErrorCode:
    with pytest.raises(FrameError) as info:
        frame_requests(msg, 1_000_000, max_entries=max_entries)
    assert len(info.value.reason) <= 2 * MAX_REASON_CHARS
    return info.value.code


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- times and sizes in properties --------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # an unset camera clock: astimezone overflows
        "9999-12-31T23:30:00-01:00",  # past year 9999 in UTC
        "1e400",
        "nan",
        "-5",
        "99999999999999999999999",
        "2024-13-45T99:00:00Z",
        "x" * 100_000,
        "٢٠٢٤-٠٥-٠١",
    ],
)
def test_unreadable_capture_times_are_dropped_never_raised(value: str) -> None:
    assert normalise_time(value) is None
    assert frame_meta_from("f", None, {"capture_time": value}).capture_time is None


@pytest.mark.parametrize("width", ["1_000", "٣", "1e3", "9" * 5000, "-4", "0x10", " ", "12.0"])
def test_raw_sizes_must_be_plain_decimal_digits(width: str) -> None:
    msg = message(b"\x00" * 12, None, pixel_format="gray8", width=width, height="2")
    assert code_of(msg) is FrameErrorCode.DIMENSIONS


def test_an_odd_pixel_format_is_named_in_a_bounded_reason() -> None:
    msg = message(b"\x00" * 12, None, pixel_format="\n" * 10_000, width="2", height="2")
    with pytest.raises(FrameError) as info:
        frame_requests(msg, 1_000_000)
    assert info.value.code is FrameErrorCode.RAW_FORMAT
    assert "\n" not in info.value.reason and len(info.value.reason) < 200


# -- content types and encodings ----------------------------------------------------------


@pytest.mark.parametrize("content_type", ["image/webp", "image/gif", "image/*", "image/x-foo"])
def test_any_image_content_type_lets_the_bytes_decide(content_type: str) -> None:
    [request] = frame_requests(message(JPEG, content_type), 1_000_000)
    assert request.payload == JPEG


@pytest.mark.parametrize(
    "content_type", ["text/plain", "video/mp4", "multipart/x-mixed-replace", "x" * 10_000]
)
def test_non_image_content_types_are_refused(content_type: str) -> None:
    assert code_of(message(JPEG, content_type)) is FrameErrorCode.UNSUPPORTED_CONTENT_TYPE


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "base64", "zlib", "no-such-codec"])
def test_compressed_or_unknown_content_encodings_are_refused(encoding: str) -> None:
    assert code_of(message(JPEG, "image/jpeg", encoding)) is (
        FrameErrorCode.UNSUPPORTED_CONTENT_ENCODING
    )


@pytest.mark.parametrize("encoding", [None, "utf-8", "UTF8", "binary", "identity", "latin-1"])
def test_charsets_and_identity_encodings_pass_for_binary_frames(encoding: str | None) -> None:
    assert frame_requests(message(PNG, "image/png", encoding), 1_000_000)[0].payload == PNG


@pytest.mark.parametrize(
    ("body", "encoding", "content_type"),
    [
        (json.dumps({"é": b64(PNG)}).encode("utf-16"), "utf-16", "application/json"),
        ('{"é": "' + b64(PNG) + '"}', "latin-1", "application/json"),
        (b"\xef\xbb\xbf" + json.dumps({"a": b64(PNG)}).encode(), None, None),
        (json.dumps({"a": b64(PNG)}).encode(), None, "application/vnd.scoring+json"),
        (json.dumps({"a": b64(PNG)}).encode(), None, "application/octet-stream"),
    ],
)
def test_json_requests_in_other_charsets_and_labels_are_read(
    body: bytes | str, encoding: str | None, content_type: str | None
) -> None:
    data = body.encode("latin-1") if isinstance(body, str) else body
    [request] = frame_requests(message(data, content_type, encoding), 1_000_000)
    assert request.payload == PNG


def test_json_that_is_not_utf8_without_a_charset_is_malformed() -> None:
    assert code_of(message(b'{"\xff\xfe": "x"}', "application/json")) is (
        FrameErrorCode.MALFORMED_JSON
    )


# -- nesting and fan-out ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000, 400_000])
def test_deeply_nested_json_is_malformed_not_a_recursion_error(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    assert code_of(message(body, "application/json")) is FrameErrorCode.MALFORMED_JSON
    nested = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    assert code_of(message(nested, None)) is FrameErrorCode.MALFORMED_JSON


def test_a_nested_entry_value_is_bad_base64_for_that_entry() -> None:
    [request] = frame_requests(message(b'{"a": {"b": "c"}}', "application/json"), 1_000_000)
    assert request.rejected is not None
    assert request.rejected.code is FrameErrorCode.BAD_BASE64


def test_a_request_over_the_entry_limit_is_refused_whole() -> None:
    body = json.dumps({f"e{i}": b64(PNG) for i in range(33)}).encode()
    assert code_of(message(body, "application/json"), 32) is FrameErrorCode.TOO_MANY_ENTRIES
    assert len(frame_requests(message(body, "application/json"), 1_000_000, max_entries=33)) == 33


def test_duplicate_entry_names_are_malformed() -> None:
    body = b'{"a": "%s", "a": "%s"}' % (b64(PNG).encode(), b64(JPEG).encode())
    assert code_of(message(body, "application/json")) is FrameErrorCode.MALFORMED_JSON


# -- names, ids and other copied text -----------------------------------------------------


def test_huge_and_odd_entry_names_are_bounded_and_stay_distinct() -> None:
    names = ["n" * 150_000 + "1", "n" * 150_000 + "2", "line\nbreak\u202e", "\ud800lone"]
    body = json.dumps({n: b64(PNG) for n in names}).encode()  # ensure_ascii keeps \ud800
    requests = frame_requests(message(body, "application/json"), 1_000_000)
    ids = [r.meta.frame_id for r in requests]
    assert len(set(ids)) == len(names)
    for request in requests:
        assert len(request.meta.frame_id) <= MAX_ID_CHARS
        assert request.meta.name is not None and request.meta.name.isprintable()
        request.meta.frame_id.encode("utf-8")  # no lone surrogate left


def test_ids_sources_and_passthrough_values_are_bounded_where_they_enter() -> None:
    meta = frame_meta_from(
        "i" * 60_000, None, {"source_id": "s\r\n" * 20_000, "lot": "L" * 60_000}, ("lot",)
    )
    assert len(meta.frame_id) <= MAX_ID_CHARS
    assert meta.source_id is not None and meta.source_id.isprintable()
    assert len(meta.passthrough["lot"]) <= 256


def test_bounded_text_keeps_short_printable_text_and_marks_what_it_changed() -> None:
    assert bounded_text("cam-1", 10) == "cam-1"
    changed = bounded_text("a\tb", 64)
    assert changed.startswith("a\ufffdb~") and changed != bounded_text("a\nb", 64)
