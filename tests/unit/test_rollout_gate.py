"""The canary gate: its conditions, and how one canary's signals pass or fail it."""

from __future__ import annotations

import pytest

from cloud_tools.errors import CliError
from cloud_tools.rollout_gate import Condition, Gate, model_signals

GOOD = {"frames": 120, "mean_confidence": 0.93, "low_confidence_share": 0.04, "error_rate": 0.0}


def test_a_gate_reads_each_condition_of_its_text() -> None:
    gate = Gate.parse("low_confidence_share<=0.10, mean_confidence>=0.85,p99_ms<40", 60, 50)
    assert gate.conditions == (
        Condition("low_confidence_share", "<=", 0.10),
        Condition("mean_confidence", ">=", 0.85),
        Condition("p99_ms", "<", 40),
    )


@pytest.mark.parametrize(
    "text", ["accuracy>=0.9", "mean_confidence=>0.9", "mean_confidence>=x", ""]
)
def test_a_gate_that_cannot_be_read_is_refused_before_anything_starts(text: str) -> None:
    with pytest.raises(CliError) as caught:
        Gate.parse(text, 60, 50)
    assert caught.value.exit_code == 2


def test_signals_that_meet_every_condition_pass() -> None:
    gate = Gate.parse("low_confidence_share<=0.10,mean_confidence>=0.85,error_rate<=0", 60, 50)
    assert gate.failures(GOOD) == []


def test_each_condition_that_fails_is_named() -> None:
    gate = Gate.parse("low_confidence_share<=0.01,mean_confidence>=0.99", 60, 50)
    assert gate.failures(GOOD) == [
        "low_confidence_share=0.04 fails low_confidence_share<=0.01",
        "mean_confidence=0.93 fails mean_confidence>=0.99",
    ]


def test_a_canary_with_too_few_frames_or_no_signals_fails() -> None:
    gate = Gate.parse("mean_confidence>=0.5", 60, 200)
    assert gate.failures(GOOD) == ["only 120 frames scored (the gate needs 200)"]
    assert gate.failures(None) == ["no signals for the new model"]


def test_a_model_s_signals_are_found_by_its_sha256_prefix() -> None:
    reported = {"signals": {"models": {"abcdef012345": GOOD}}}
    assert model_signals(reported, "abcdef012345" + "0" * 52) == GOOD
    assert model_signals(reported, "f" * 64) is None
    assert model_signals({}, "f" * 64) is None


def test_a_gate_without_canaries_is_refused_before_anything_is_uploaded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cloud_tools.__main__ import main

    args = ["model", "rollout", "--name", "x", "--target-condition", "*", "--priority", "5"]
    args += ["--url", "https://example.invalid/m.onnx", "--sha256", "0" * 64]
    assert main([*args, "--gate", "mean_confidence>=0.9"]) == 2
    assert "--gate judges canaries: give --canary-percent too" in capsys.readouterr().err
