"""The desired-properties schema: valid documents parse into typed objects, anything else is
refused whole with every problem named."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from classifier.model_update.desired import DesiredProperties, DesiredPropertiesError
from classifier.providers import ProviderPolicy

SHA = "ab" * 32
MODEL = {"name": "m", "version": "2", "url": "https://store/m.onnx?sig=x", "sha256": SHA}


def parse(**doc: Any) -> DesiredProperties:
    return DesiredProperties.parse({"$version": 4, **doc})


def problems(**doc: Any) -> str:
    with pytest.raises(DesiredPropertiesError) as e:
        parse(**doc)
    return str(e.value)


def test_an_empty_document_means_the_built_in_model_and_environment_settings() -> None:
    desired = parse()
    assert desired.version == 4
    assert desired.model is None
    assert desired.inference.live_changes() == {}


def test_a_full_document_parses_into_typed_settings() -> None:
    signature = base64.b64encode(bytes(64)).decode()
    desired = parse(
        schemaVersion="1.0",
        model=MODEL | {"size": 1234, "signature": signature, "sha256": SHA.upper()},
        inference={
            "top_k": 2,
            "confidence_threshold": 0.25,
            "max_batch": 16,
            "max_wait_ms": 2,
            "provider": "CUDA",
            "provider_policy": "require",
        },
    )
    assert desired.model is not None
    assert desired.model.sha256 == SHA  # normalised to lower case
    assert (desired.model.size, desired.model.signature) == (1234, bytes(64))
    assert desired.inference.live_changes() == {
        "top_k": 2,
        "confidence_threshold": 0.25,
        "max_batch": 16,
        "max_wait_ms": 2.0,
    }
    assert desired.inference.provider == "cuda"
    assert desired.inference.provider_policy is ProviderPolicy.REQUIRE


def test_a_null_model_means_the_built_in_one() -> None:
    assert parse(model=None).model is None


def test_every_problem_is_named_at_once() -> None:
    text = problems(
        model={"url": "ftp://x/m.onnx", "sha256": "nothex"},
        inference={"top_k": 0, "confidence_threshold": 2},
    )
    for fragment in ("scheme", "sha256", "top_k", "confidence_threshold"):
        assert fragment in text


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"inference": {"confidence_treshold": 0.2}}, "unknown keys ['confidence_treshold']"),
        ({"modle": {}}, "unknown keys ['modle']"),
        ({"model": MODEL | {"mirror": "x"}}, "model has unknown keys"),
        ({"schemaVersion": "2.0"}, "schemaVersion"),
        ({"model": "https://x/m.onnx"}, "model must be an object"),
        ({"model": {"sha256": SHA}}, "model.url is required"),
        ({"model": MODEL | {"size": -1}}, "model.size"),
        ({"model": MODEL | {"size": True}}, "model.size"),
        ({"model": MODEL | {"signature": "not base64!"}}, "model.signature"),
        ({"model": MODEL | {"signature": base64.b64encode(b"short").decode()}}, "model.signature"),
        ({"model": MODEL | {"name": ""}}, "model.name"),
        ({"inference": {"top_k": 2.5}}, "inference.top_k"),
        ({"inference": {"top_k": True}}, "inference.top_k"),
        ({"inference": {"max_wait_ms": float("inf")}}, "inference.max_wait_ms"),
        ({"inference": {"provider": "tpu"}}, "inference.provider"),
        ({"inference": {"provider_policy": "sometimes"}}, "inference.provider_policy"),
        ({"inference": []}, "inference must be an object"),
    ],
)
def test_invalid_documents_are_refused_with_the_reason(doc: dict[str, Any], fragment: str) -> None:
    assert fragment in problems(**doc)


def test_a_document_without_a_version_is_refused() -> None:
    with pytest.raises(DesiredPropertiesError, match=r"\$version"):
        DesiredProperties.parse({"model": None})


def test_twin_metadata_keys_are_not_settings() -> None:
    assert parse(**{"$metadata": {"$lastUpdated": "x"}}).model is None


def test_the_reported_form_of_a_model_never_shows_its_url() -> None:
    desired = parse(model=MODEL)
    assert desired.model is not None
    assert "url" not in desired.model.describe()
