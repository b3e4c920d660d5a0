"""The timestamped line log the process backend keeps beside each module's raw log."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from simulator.device.line_log import TimestampedLineLog, timestamped_log_path

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_timestamped_log_sits_beside_the_raw_log() -> None:
    assert timestamped_log_path(Path("/x/logs/classifier.log")) == Path(
        "/x/logs/classifier.timestamped.log"
    )


def test_lines_come_back_with_their_arrival_time_in_order(tmp_path: Path) -> None:
    with closing(TimestampedLineLog(tmp_path / "m.timestamped.log")) as log:
        log.append([b"<6> first", b"second\r"], at(0))
        log.append([b"caf\xc3\xa9 \xff"], at(1.5))
        lines = log.read(None, None, None)
        assert [(line.timestamp, line.text) for line in lines] == [
            (at(0), "<6> first"),
            (at(0), "second"),
            (at(1.5), "café \ufffd"),
        ]


def test_since_and_until_are_inclusive_and_tail_applies_after_them(tmp_path: Path) -> None:
    with closing(TimestampedLineLog(tmp_path / "m.timestamped.log")) as log:
        for second in range(10):
            log.append([f"line {second}".encode()], at(second))
        texts = [line.text for line in log.read(at(2), at(6), 2)]
        assert texts == ["line 5", "line 6"]
        assert [line.text for line in log.read(at(8), None, None)] == ["line 8", "line 9"]
        assert log.read(None, at(-1), None) == []
        assert log.read(None, None, 0) == []


def test_rotation_keeps_one_old_file_so_the_disk_stays_bounded(tmp_path: Path) -> None:
    with closing(TimestampedLineLog(tmp_path / "m.timestamped.log", max_bytes=2000)) as log:
        for n in range(500):
            log.append([f"line {n:04d}".encode()], at(n))
        files = [log.path, log.rotated_path]
        assert all(path.stat().st_size <= 2000 for path in files)
        texts = [line.text for line in log.read(None, None, None)]
        # The newest lines, contiguous and in order, across the rotated file and the current one.
        assert texts[-1] == "line 0499"
        assert texts == [f"line {n:04d}" for n in range(500 - len(texts), 500)]
        assert 2000 // 40 < len(texts) <= 2 * 2000 // 38


def test_a_partly_written_last_line_is_left_for_the_next_read(tmp_path: Path) -> None:
    with closing(TimestampedLineLog(tmp_path / "m.timestamped.log")) as log:
        log.append([b"whole"], at(0))
        with log.path.open("ab") as f:
            f.write(b"2026-12-06T12:00:01.000000Z half")
        assert [line.text for line in log.read(None, None, None)] == ["whole"]
