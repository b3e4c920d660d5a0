"""``python -m cloud_tools score-video`` as a user runs it: every frame of test-made videos
(H.264 with an AAC track, frame counts that do not divide by the shards) scored locally and on
a real local Ray cluster with two worker nodes, one of which is killed mid-job.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_tools.__main__ import main as cloud_tools
from tests.conftest import REPO
from tests.support.ray_cluster import ADDRESS, RayCluster, namespaces_unavailable
from tests.support.tools import require
from tests.support.videos import MadeVideo, audio_streams, count_decoded_frames, make_video

FRAMES_PER_SHARD = 40
# The kill test scores the videos this many times over: long enough to kill a worker midway.
COPIES = 12


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> list[MadeVideo]:
    folder = tmp_path_factory.mktemp("videos")
    # 203 = 5 x 40 + 3; 97 = 2 x 40 + 17: neither divides into the shards evenly.
    return [
        make_video(folder / "dock.mp4", 203, fps=25, gop=12),
        make_video(folder / "gate.mkv", 97, fps=10, gop=7, width=160, height=128),
    ]


@pytest.fixture(scope="module")
def local_run(videos: list[MadeVideo], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local")
    argv = ["score-video", *(str(v.path) for v in videos), "--out", str(out)]
    assert cloud_tools([*argv, "--frames-per-shard", str(FRAMES_PER_SHARD), "--annotate"]) == 0
    return out


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_frame_the_decoder_yields_has_exactly_one_prediction(
    videos: list[MadeVideo], local_run: Path
) -> None:
    for video in videos:
        records = lines(local_run / f"{video.path.stem}.predictions.jsonl")
        assert [r["frame"] for r in records] == list(range(count_decoded_frames(video.path)))
        assert all("error" not in r for r in records)
        summary = json.loads((local_run / f"{video.path.stem}.summary.json").read_text())
        assert summary["frames"] == summary["predictions"] == video.frames
        assert summary["shards"] >= 2
        times = [float(str(r["time_s"])) for r in records]
        assert times == sorted(times) and times[1] == pytest.approx(1 / video.fps, abs=1e-3)


def test_predictions_are_the_modules_own_on_the_synthetic_classes(
    videos: list[MadeVideo], local_run: Path
) -> None:
    video = videos[0]
    records = lines(local_run / f"{video.path.stem}.predictions.jsonl")
    right = sum(r["label"] == video.truth(int(str(r["frame"]))) for r in records)
    assert right / len(records) > 0.8  # the default model, on lossy re-encoded frames


def test_the_annotated_video_has_every_frame_and_the_original_audio(
    videos: list[MadeVideo], local_run: Path
) -> None:
    for video in videos:
        [annotated] = local_run.glob(f"{video.path.stem}.annotated.*")
        assert annotated.suffix == video.path.suffix
        assert count_decoded_frames(annotated) == video.frames
        [(codec, seconds)] = audio_streams(annotated)
        assert codec == "aac" and seconds == pytest.approx(video.audio_seconds, abs=0.1)


def test_an_input_that_is_not_a_video_is_refused_by_name(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    assert cloud_tools(["score-video", str(bogus), "--out", str(tmp_path / "out")]) == 2


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    require(namespaces_unavailable())
    cluster = RayCluster(workers=2)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def ray_job(cluster: RayCluster, videos: list[MadeVideo], out: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "cloud_tools", "score-video", *(str(v.path) for v in videos)]
    argv += ["--out", str(out), "--frames-per-shard", str(FRAMES_PER_SHARD), "--ray", ADDRESS]
    return cluster.popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_on_ray_the_predictions_are_identical_to_the_local_run(
    cluster: RayCluster, videos: list[MadeVideo], local_run: Path, tmp_path: Path
) -> None:
    job = ray_job(cluster, videos, tmp_path)
    _, err = job.communicate(timeout=240)
    assert job.returncode == 0, err.decode()[-3000:]
    for video in videos:
        name = f"{video.path.stem}.predictions.jsonl"
        assert (tmp_path / name).read_bytes() == (local_run / name).read_bytes()
    assert "2 worker(s)" in err.decode()


def shards_done(line: str) -> tuple[int, int] | None:
    found = re.match(r"score-video: (\d+)/(\d+) shards", line)
    return (int(found.group(1)), int(found.group(2))) if found else None


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_no_frame_and_changes_no_prediction(
    cluster: RayCluster, tmp_path: Path, local_run: Path, videos: list[MadeVideo]
) -> None:
    # The same videos several times over: a job long enough to kill a worker in the middle.
    inputs = videos * COPIES
    job = ray_job(cluster, inputs, tmp_path)
    assert job.stderr is not None
    progress: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = job.stderr.readline().decode()
        progress.append(line)
        done = shards_done(line)
        # Both workers scoring, some shards done and most still to do: kill one now.
        if done and 0 < done[0] < done[1] * 0.6 and " 2 worker(s)" in line:
            break
        assert line, "".join(progress)
    cluster.kill_worker(0)
    _, err = job.communicate(timeout=240)
    progress.append(err.decode())
    assert job.returncode == 0, "".join(progress)[-3000:]
    report = json.loads((tmp_path / "job.json").read_text())
    assert report["frames"] == COPIES * sum(v.frames for v in videos)
    for copy in range(COPIES):
        for video in videos:
            name = video.path.stem + (f"-{copy + 1}" if copy else "")
            ours = tmp_path / f"{name}.predictions.jsonl"
            assert (
                ours.read_bytes()
                == (local_run / f"{video.path.stem}.predictions.jsonl").read_bytes()
            )
            summary = json.loads((tmp_path / f"{name}.summary.json").read_text())
            assert summary["frames"] == summary["predictions"] == video.frames
    assert "retrying" in "".join(progress)  # the killed worker's shard, alone
    assert report["retries"] >= 1
