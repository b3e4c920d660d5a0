"""The local scoring command runs files through the module's own code path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from classifier import score
from tests.conftest import REPO
from tests.unit.test_hostile_images import hidden_frame_header_bomb


def main(argv: list[str]) -> int:
    # score.main() calls asyncio.run(); in its own thread it cannot replace the event loop
    # pytest-asyncio keeps for the main thread (which would then leak, unclosed).
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(score.main, argv).result()


def test_scores_real_photos_and_cifar_frames_with_a_folder_walk(
    testdata: Path, colour_model: Path, tmp_path: Path, capsys
) -> None:
    for name in ("cifar-automobile8.png", "examples_leopard.jpg"):
        shutil.copy(testdata / name, tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    assert main([str(tmp_path), "--model", str(colour_model), "--json", "--top-k", "2"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_file = {Path(d["frame"]["id"]).name: d for d in docs}
    assert set(by_file) == {"cifar-automobile8.png", "examples_leopard.jpg", "broken.jpg"}
    assert by_file["cifar-automobile8.png"]["frame"]["width"] == 32
    assert len(by_file["examples_leopard.jpg"]["inferences"]) == 2
    assert by_file["broken.jpg"]["error"]["code"] == "corrupt_image"


def test_human_output_names_each_file(testdata: Path, colour_model: Path, capsys) -> None:
    assert main([str(testdata / "cifar-automobile10.png"), "--model", str(colour_model)]) == 0
    out = capsys.readouterr()
    assert "cifar-automobile10.png:" in out.out and "1 scored, 0 refused" in out.err


def test_missing_model_is_a_clear_error(testdata: Path, tmp_path: Path, capsys) -> None:
    assert (
        main([str(testdata / "cifar-automobile8.png"), "--model", str(tmp_path / "none.onnx")]) == 1
    )
    assert "model file not found" in capsys.readouterr().err


def test_missing_paths_and_empty_folders_are_reported(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "nope.jpg")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no image files" in capsys.readouterr().err


def test_a_folder_of_hostile_files_is_reported_file_by_file_without_hanging(
    testdata: Path, colour_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(testdata / "cifar-automobile8.png", folder / "good.png")
    (folder / "nested.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    (folder / "bomb.jpg").write_bytes(hidden_frame_header_bomb())
    whole = (testdata / "examples_leopard.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2] + b"\xff\xd9")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.bmp").write_text("not pixels")
    with (folder / "huge.bmp").open("wb") as sparse:  # 20 MB, over MAX_FRAME_BYTES, unread
        sparse.truncate(20 * 1024 * 1024)
    os.mkfifo(folder / "pipe.jpg")  # reading it would block for ever
    env = os.environ | {"PYTHONPATH": f"{REPO / 'modules' / 'classifier'}:{REPO}"}
    done = subprocess.run(
        [sys.executable, "-m", "classifier.score", str(folder), "--model", str(colour_model)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {Path(line.split(": ", 1)[0]).name: line for line in done.stdout.splitlines()}
    expected = {
        "nested.json": "malformed_json",
        "bomb.jpg": "corrupt_image",
        "cut.jpg": "corrupt_image",
        "empty.png": "empty_frame",
        "text.bmp": "unrecognised_format",
        "huge.bmp": "frame_too_large",
        "pipe.jpg": "unreadable",
    }
    for name, code in expected.items():
        assert f"ERROR {code}" in lines[name], lines.get(name)
    assert "ERROR" not in lines["good.png"]
    assert "1 scored, 7 refused" in done.stderr
