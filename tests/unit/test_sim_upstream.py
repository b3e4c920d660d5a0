"""The upstream store: durable, ordered, filterable, and followable from another connection."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.hub.upstream import MessageFilter, StoredMessage, UpstreamStore
from simulator.messages import Message


@pytest.fixture
def store(tmp_path: Path) -> Iterator[UpstreamStore]:
    opened = UpstreamStore.open(tmp_path / "upstream.db")
    yield opened
    opened.close()


def add(
    store: UpstreamStore, body: bytes, module: str = "classifier", output: str | None = "p"
) -> StoredMessage:
    message = Message(
        body, properties={"label": "cat"}, correlation_id="c1", content_type="application/json"
    )
    return store.append(message, device_id="dev1", module_id=module, output_name=output)


def test_messages_come_back_in_order_with_their_properties(store: UpstreamStore) -> None:
    add(store, b"one")
    add(store, b"\xff\x00")
    first, second = store.read()
    assert (first.sequence_number, second.sequence_number) == (1, 2)
    assert first.message.body == b"one"
    assert first.message.properties == {"label": "cat"}
    assert first.message.correlation_id == "c1"
    assert second.to_json()["body"] == {"base64": "/wA="}


def test_reads_filter_by_source_and_resume_after_a_sequence_number(store: UpstreamStore) -> None:
    add(store, b"a", module="classifier", output="predictions")
    add(store, b"b", module="camera", output="frames")
    add(store, b"c", module="classifier", output="errors")
    by_module = store.read(where=MessageFilter(module_id="classifier"))
    assert [m.message.body for m in by_module] == [b"a", b"c"]
    assert [m.message.body for m in store.read(where=MessageFilter(output_name="frames"))] == [b"b"]
    assert [m.message.body for m in store.read(after_sequence=1, limit=1)] == [b"b"]


def test_messages_and_sequence_numbers_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "upstream.db"
    first = UpstreamStore.open(path)
    add(first, b"kept")
    first.close()
    again = UpstreamStore.open(path)
    try:
        assert [m.message.body for m in again.read()] == [b"kept"]
        assert add(again, b"next").sequence_number == 2
    finally:
        again.close()


async def test_a_follower_in_the_writing_process_is_woken_at_once(store: UpstreamStore) -> None:
    add(store, b"old")

    async def first_new() -> StoredMessage:
        async for stored in store.follow(poll_interval_s=30):
            return stored
        raise AssertionError("follow ended")

    task = asyncio.create_task(first_new())
    await asyncio.sleep(0.05)
    add(store, b"new")
    stored = await asyncio.wait_for(task, 2)
    assert stored.message.body == b"new"


async def test_a_follower_on_another_connection_sees_new_messages_by_polling(
    tmp_path: Path,
) -> None:
    path = tmp_path / "upstream.db"
    writer = UpstreamStore.open(path)
    reader = UpstreamStore.open(path)
    try:
        add(writer, b"early")

        async def collect() -> list[bytes]:
            bodies: list[bytes] = []
            async for stored in reader.follow(
                after_sequence=0, poll_interval_s=0.05, where=MessageFilter(device_id="dev1")
            ):
                bodies.append(stored.message.body)
                if len(bodies) == 2:
                    return bodies
            return bodies

        task = asyncio.create_task(collect())
        await asyncio.sleep(0.1)
        add(writer, b"late")
        assert await asyncio.wait_for(task, 2) == [b"early", b"late"]
    finally:
        writer.close()
        reader.close()


def messages_command(state_dir: Path, *options: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--state-dir", str(state_dir), "messages", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line)["body"]["text"] for line in done.stdout.splitlines()]


def test_the_messages_command_prints_the_newest_n_with_last_oldest_first(tmp_path: Path) -> None:
    opened = UpstreamStore.open(tmp_path / "upstream.sqlite")
    for body in (b"a", b"b", b"c", b"d"):
        add(opened, body)
    add(opened, b"other", module="camera")
    opened.close()
    assert messages_command(tmp_path, "--last", "2") == ["d", "other"]
    assert messages_command(tmp_path, "--last", "2", "--module", "classifier") == ["c", "d"]
    assert messages_command(tmp_path) == ["a", "b", "c", "d", "other"]
