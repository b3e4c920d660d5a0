"""Labelling captured frames: the oracle, the page's session (label, correct, undo) and the
labels file it keeps, and the dataset's statistics."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import synthdata
from cloud_tools.__main__ import main
from cloud_tools.dataset.captures import captures, read_labels
from cloud_tools.dataset.label_server import LabelServer, LabelSession
from cloud_tools.dataset.stats import dataset_stats
from cloud_tools.errors import CliError
from tests.support.capture_folder import write_captures


def test_the_oracle_labels_every_frame_from_its_ground_truth(tmp_path: Path) -> None:
    truths = write_captures(tmp_path, 6)
    assert main(["label", str(tmp_path), "--oracle", "truth"]) == 0
    labels = read_labels(tmp_path)
    assert sorted(r["label"] for r in labels.values()) == sorted(truths)
    assert {r["by"] for r in labels.values()} == {"oracle:truth"}
    lines = (tmp_path / "labels.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["frame"].endswith(".json") for line in lines)


def test_a_session_labels_corrects_and_undoes_and_the_file_follows(tmp_path: Path) -> None:
    write_captures(tmp_path, 3)
    session = LabelSession(tmp_path, list(synthdata.LABELS))
    first, second = session.captures[0].key, session.captures[1].key
    session.set_label(first, "star")
    session.set_label(second, "heart")
    session.set_label(first, "circle")  # corrected
    assert read_labels(tmp_path)[first]["label"] == "circle"
    session.undo()
    assert read_labels(tmp_path)[first]["label"] == "star"
    session.undo()
    assert second not in read_labels(tmp_path)
    state = session.state()
    assert (state["labelled"], state["total"], state["can_undo"]) == (1, 3, True)
    with pytest.raises(ValueError, match="not one of the classes"):
        session.set_label(first, "dragon")


def test_the_page_is_offered_on_loopback_only(tmp_path: Path) -> None:
    write_captures(tmp_path, 1)
    with pytest.raises(CliError, match="loopback only"):
        LabelServer(LabelSession(tmp_path), "0.0.0.0")


def test_stats_count_captures_labels_and_agreement(tmp_path: Path) -> None:
    write_captures(tmp_path, 4)
    main(["label", str(tmp_path), "--oracle", "truth"])
    stats = dataset_stats(tmp_path)
    assert stats["captures"] == 4 and stats["labelled"] == 4
    assert stats["model_agrees_with_label"] == 0.5  # the helper's top-1 is wrong every other frame
    assert stats["by_policy"] == {"low_confidence": 4} and stats["by_device"] == {"dock-7": 4}
    assert len(captures(tmp_path)) == 4


def _post(url: str, body: dict[str, str], origin: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_only_the_page_s_own_origin_may_change_labels(tmp_path: Path) -> None:
    write_captures(tmp_path, 2)
    session = LabelSession(tmp_path, list(synthdata.LABELS))
    server = LabelServer(session, "127.0.0.1", 0)
    url = server.start()
    try:
        body = {"key": session.captures[0].key, "label": "star"}
        assert _post(url + "api/label", body, "http://elsewhere.example") == 403
        assert not read_labels(tmp_path)
        assert _post(url + "api/label", body, url.rstrip("/")) == 200
        assert read_labels(tmp_path)[session.captures[0].key]["label"] == "star"
        with urllib.request.urlopen(url + "frame/1", timeout=10) as response:
            assert response.read() == session.captures[1].frame_path.read_bytes()
    finally:
        server.stop()


def _get(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Host": host} if host is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_a_rebound_host_name_is_refused_and_frames_are_served_as_images_only(
    tmp_path: Path,
) -> None:
    write_captures(tmp_path, 2)
    # A sidecar is written by a device: the type it names is not what the browser gets.
    sidecar = tmp_path / session_sidecar(tmp_path)
    doc = json.loads(sidecar.read_text())
    doc["frame"]["content_type"] = "text/html"
    sidecar.write_text(json.dumps(doc))
    session = LabelSession(tmp_path, list(synthdata.LABELS))
    server = LabelServer(session, "127.0.0.1", 0)
    url = server.start()
    try:
        status, _, _ = _get(url + "api/state", host="evil.example:8765")
        assert status == 403
        for n in range(2):
            status, headers, _ = _get(url + f"frame/{n}")
            assert status == 200 and headers["Content-Type"] == "image/jpeg"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Content-Security-Policy"] == "default-src 'none'"
    finally:
        server.stop()


def session_sidecar(folder: Path) -> Path:
    return next(folder.rglob("*.json")).relative_to(folder)


def test_the_label_command_serves_the_classes_of_a_model(tmp_path: Path) -> None:
    from tests.conftest import DEFAULT_MODEL

    write_captures(tmp_path, 2)
    command = [sys.executable, "-m", "cloud_tools", "label", str(tmp_path), "--port", "0"]
    with subprocess.Popen(
        [*command, "--model", str(DEFAULT_MODEL)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line[line.index("http://") :].split()[0]
            status, _, body = _get(url.rstrip("/") + "/api/state")
            assert status == 200
            assert json.loads(body)["classes"] == list(synthdata.LABELS)
        finally:
            process.terminate()


@pytest.mark.parametrize(
    "change",
    [
        {"top_k": [{"label": "star", "confidence": "x"}]},
        {"top_k": [{"label": "star", "confidence": None}]},
        {"top_k": [{"label": "star", "confidence": float("nan")}]},
        {"top_k": "star"},
        {"frame_properties": ["truth"]},
    ],
)
def test_a_malformed_sidecar_is_skipped_not_half_read(
    tmp_path: Path, change: dict[str, object]
) -> None:
    write_captures(tmp_path, 3)
    sidecar = tmp_path / session_sidecar(tmp_path)
    doc = json.loads(sidecar.read_text())
    if "frame_properties" in change:
        doc["frame"]["properties"] = change["frame_properties"]
    else:
        doc.update(change)
    sidecar.write_text(json.dumps(doc))
    found = captures(tmp_path)
    assert len(found) == 2
    assert dataset_stats(tmp_path)["captures"] == 2
    assert len(LabelSession(tmp_path).state()["items"]) == 2
