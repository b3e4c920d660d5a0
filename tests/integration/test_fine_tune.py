"""``train --init-from --labels`` and ``evaluate`` as an operator runs them, on a handful of
labelled captures (kept tiny: TensorFlow on two shared cores is slow). What is checked is the
path (captures -> fine-tuned, self-describing ONNX -> side-by-side accuracy), not a score."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.model_spec import ModelSpec
from cloud_tools.__main__ import main
from cloud_tools.dataset.captures import captures
from cloud_tools.model_file import read_spec
from tests.conftest import DEFAULT_MODEL
from tests.support.capture_folder import write_captures

pytestmark = pytest.mark.slow


def test_labelled_captures_fine_tune_the_model_and_evaluate_compares_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    write_captures(data, 40)
    assert main(["label", str(data), "--oracle", "truth"]) == 0
    out = tmp_path / "tuned.onnx"
    train = [
        "train", "--init-from", str(DEFAULT_MODEL), "--labels", str(data / "labels.jsonl"),
        "--out", str(out), "--version", "1.0.1", "--replay", "40", "--epochs", "1",
    ]  # fmt: skip
    assert main(train) == 0
    printed = capsys.readouterr().out
    held_out = sum(1 for c in captures(data) if c.held_out)
    assert f"{40 - held_out} labelled captures" in printed and "captures_held_out" in printed
    spec: ModelSpec = read_spec(out)
    assert (spec.name, spec.version) == ("seed-cnn-synth10", "1.0.1")
    tuning = spec.info["fine_tuning"]
    assert tuning["captures_train"] == 40 - held_out and tuning["replay"] == 40
    assert 0 <= tuning["after"]["synthetic_held_out"] <= 1

    evaluate = ["evaluate", "--model", str(DEFAULT_MODEL), "--model", str(out)]
    evaluate += ["--labels", str(data / "labels.jsonl"), "--synthetic", "50"]
    assert main([*evaluate, "--drift", "lighting=1", "--stream", "20"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| data | frames | seed-cnn-synth10.onnx | tuned.onnx |"
    rows = [line.split(" | ")[0].strip("| ") for line in table[2:]]
    assert rows == [
        "captures held out",
        "synthetic held out",
        "camera, drifted",
        "camera, undrifted",
    ]
