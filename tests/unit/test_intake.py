"""A frames message becomes frame requests by content type and by sniffing; metadata is kept."""

from __future__ import annotations

import base64
import json

import pytest

from classifier.errors import FrameError, FrameErrorCode
from classifier.frames import PixelFormat
from classifier.intake import frame_requests
from classifier.intake.message_meta import normalise_time
from edge_module.hub import InboundMessage

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40


def message(body: bytes, content_type: str | None = None, **props: str) -> InboundMessage:
    return InboundMessage(
        "frames", body, content_type=content_type, message_id="m1", properties=props
    )


def refused(msg: InboundMessage) -> FrameError:
    with pytest.raises(FrameError) as info:
        frame_requests(msg, 1_000_000)
    return info.value


@pytest.mark.parametrize(
    "content_type", ["image/jpeg", "image/png", "image/bmp", None, "application/octet-stream"]
)
def test_encoded_images_are_one_request_whatever_the_image_type(content_type) -> None:
    [req] = frame_requests(message(JPEG, content_type), 1_000_000)
    assert req.payload == JPEG and req.raw is None


def test_content_type_parameters_and_case_are_ignored() -> None:
    [req] = frame_requests(message(PNG, "Image/PNG; charset=binary"), 1_000_000)
    assert req.payload == PNG


def test_raw_buffer_properties_describe_the_layout() -> None:
    msg = message(
        b"\x00" * 12, "application/octet-stream", pixel_format="BGR24", width="2", height="2"
    )
    [req] = frame_requests(msg, 1_000_000)
    assert req.raw is not None
    assert (req.raw.pixel_format, req.raw.width, req.raw.height) == (PixelFormat.BGR24, 2, 2)


def test_unsupported_raw_pixel_format_is_refused() -> None:
    msg = message(b"\x00" * 12, None, pixel_format="yuv420p", width="2", height="2")
    assert refused(msg).code is FrameErrorCode.RAW_FORMAT


@pytest.mark.parametrize("key", ["pixel_format", "pixelFormat"])
@pytest.mark.parametrize("value", ["", "   "])
def test_a_present_but_empty_pixel_format_is_an_unsupported_raw_format(
    key: str, value: str
) -> None:
    msg = message(b"\x00" * 12, None, **{key: value, "width": "2", "height": "2"})
    error = refused(msg)
    assert error.code is FrameErrorCode.RAW_FORMAT, error


def test_raw_buffer_without_integer_size_is_refused() -> None:
    msg = message(b"\x00" * 12, None, pixel_format="rgb24", width="two", height="2")
    assert refused(msg).code is FrameErrorCode.DIMENSIONS


@pytest.mark.parametrize("content_type", ["text/plain", "video/mp4", "application/xml"])
def test_wrong_content_types_are_refused_by_name(content_type: str) -> None:
    error = refused(message(JPEG, content_type))
    assert error.code is FrameErrorCode.UNSUPPORTED_CONTENT_TYPE
    assert content_type in error.reason


def test_raw_properties_with_an_image_content_type_are_refused() -> None:
    msg = message(b"\x00" * 12, "image/jpeg", pixel_format="rgb24", width="2", height="2")
    assert refused(msg).code is FrameErrorCode.UNSUPPORTED_CONTENT_TYPE


def test_empty_and_oversized_messages_are_refused() -> None:
    assert refused(message(b"", "image/jpeg")).code is FrameErrorCode.EMPTY
    with pytest.raises(FrameError) as info:
        frame_requests(message(b"x" * 101, "image/jpeg"), 100)
    assert info.value.code is FrameErrorCode.TOO_LARGE


def test_json_scoring_request_scores_every_entry_not_just_the_last() -> None:
    body = json.dumps(
        {"a.png": base64.b64encode(PNG).decode(), "b.jpg": base64.b64encode(JPEG).decode()}
    )
    reqs = frame_requests(message(body.encode(), "application/json"), 1_000_000)
    assert [r.meta.name for r in reqs] == ["a.png", "b.jpg"]
    assert [r.meta.frame_id for r in reqs] == ["m1/a.png", "m1/b.jpg"]
    assert reqs[0].payload == PNG and reqs[1].payload == JPEG


def test_json_scoring_request_is_sniffed_without_a_content_type() -> None:
    body = json.dumps({"x": base64.b64encode(PNG).decode()}).encode()
    [req] = frame_requests(message(b"  " + body), 1_000_000)
    assert req.payload == PNG


def test_data_urls_are_accepted_in_json_requests() -> None:
    body = json.dumps({"x": "data:image/png;base64," + base64.b64encode(PNG).decode()})
    [req] = frame_requests(message(body.encode(), "application/json"), 1_000_000)
    assert req.payload == PNG


def test_bad_entry_in_a_json_request_is_rejected_alone() -> None:
    body = json.dumps({"good": base64.b64encode(PNG).decode(), "bad": "%%%not-base64", "num": 3})
    reqs = frame_requests(message(body.encode(), "application/json"), 1_000_000)
    good, bad, num = reqs
    assert good.rejected is None
    assert bad.rejected is not None and bad.rejected.code is FrameErrorCode.BAD_BASE64
    assert num.rejected is not None and "int" in num.rejected.reason


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"{}", b'"text"', b"\xff\xfe{"])
def test_malformed_json_requests_are_refused(body: bytes) -> None:
    assert refused(message(body, "application/json")).code is FrameErrorCode.MALFORMED_JSON


def test_frame_metadata_comes_from_message_properties() -> None:
    msg = InboundMessage(
        "frames",
        JPEG,
        correlation_id="c9",
        properties={"camera_id": "dock-3", "capture_time": "1700000000123"},
    )
    [req] = frame_requests(msg, 1_000_000)
    assert req.meta.frame_id == "c9"
    assert req.meta.source_id == "dock-3"
    assert req.meta.capture_time == "2023-11-14T22:13:20.123Z"


def test_upstream_module_is_the_source_when_no_camera_is_named() -> None:
    msg = InboundMessage("frames", JPEG, properties={"$.cmid": "camera"})
    [req] = frame_requests(msg, 1_000_000)
    assert req.meta.source_id == "camera"
    assert req.meta.frame_id.startswith("camera-")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.000Z"),
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00.000Z"),
        ("1714557600", "2024-05-01T10:00:00.000Z"),
        ("not a time", None),
        ("nan", None),
        ("-5", None),
        (None, None),
    ],
)
def test_capture_times_are_normalised_to_utc(raw, expected) -> None:
    assert normalise_time(raw) == expected
