"""Threads or processes for decoding by the core count (DECODE_PROCESSES=auto), and decoders
that yield the cores to inference (DECODE_NICE), checked on real threads and processes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from classifier.config import ModuleConfig
from classifier.decode_limits import FrameLimits
from classifier.decoding.choice import DEFAULT_NICE, decoder_processes
from classifier.decoding.processes import ProcessDecoder
from classifier.decoding.threads import ThreadDecoder
from classifier.engine import InferenceEngine
from classifier.frames import FrameMeta, FrameRequest
from classifier.metrics import Metrics
from classifier.model_store import ModelStore, ServingModel
from classifier.pipeline import Pipeline, PipelineConfig
from tests.integration.model_update_support import RED_JPEG
from tests.support.tiny_models import colour_spec, write_colour_model


def test_auto_decodes_in_a_process_per_core_wherever_there_are_two_cores_or_more() -> None:
    small, large = 32 * 32, 224 * 224
    assert [decoder_processes(None, small, cores) for cores in (1, 2, 3)] == [0, 2, 3]
    assert [decoder_processes(None, small, cores) for cores in (4, 8, 64)] == [4, 8, 16]
    # A large model's frames are mostly inference: threads, whatever the cores.
    assert [decoder_processes(None, large, cores) for cores in (2, 64)] == [0, 0]
    assert decoder_processes(0, small, 64) == 0
    assert decoder_processes(5, large, 2) == 5


def test_the_module_reads_decode_processes_and_nice_from_its_environment() -> None:
    base = {"MODEL_PATH": "/m.onnx"}
    config = ModuleConfig.from_env(base).pipeline
    assert config.decode_processes is None  # auto: decided with the model, when it starts
    assert config.decode_nice == DEFAULT_NICE
    chosen = ModuleConfig.from_env(base | {"DECODE_PROCESSES": "3", "DECODE_NICE": "0"})
    assert (chosen.pipeline.decode_processes, chosen.pipeline.decode_nice) == (3, 0)
    assert ModuleConfig.from_env(base | {"DECODE_PROCESSES": "auto"}).pipeline == config
    for bad in ({"DECODE_PROCESSES": "-1"}, {"DECODE_NICE": "20"}, {"DECODE_NICE": "low"}):
        with pytest.raises(Exception, match=next(iter(bad))):
            ModuleConfig.from_env(base | bad)


def _nice_of_thread(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def _nice_of_process(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


async def test_decode_threads_yield_to_the_rest_of_the_module(colour_model: Path) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    decoder = ThreadDecoder(2, FrameLimits(), nice=5)
    model = ServingModel.from_engine(InferenceEngine.from_path(colour_model), "test")
    try:
        requests = [FrameRequest(FrameMeta(f"f{i}"), RED_JPEG) for i in range(4)]
        batch = await decoder.decode(model, requests, 0.0)
        assert all(p.error is None for p in batch.items)
        tids = {t.native_id for t in threading.enumerate() if t.name.startswith("decode")}
        assert tids, "no decode thread ran"
        assert {_nice_of_thread(t) for t in tids if t is not None} == {min(19, own + 5)}
        assert os.getpriority(os.PRIO_PROCESS, 0) == own  # the module's own thread unchanged
    finally:
        await decoder.close()


@pytest.mark.slow
async def test_decoder_processes_yield_to_the_module(colour_model: Path) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    decoder = ProcessDecoder(2, FrameLimits(), capacity=8, nice=7)
    model = ServingModel.from_engine(InferenceEngine.from_path(colour_model), "test")
    await decoder.start()
    try:
        requests = [FrameRequest(FrameMeta(f"f{i}"), RED_JPEG) for i in range(8)]
        batch = await decoder.decode(model, requests, 0.0)
        assert all(p.error is None for p in batch.items)
        batch.release()
        pids = [w.process.pid for w in decoder._workers]
        assert len(pids) == 2
        assert {_nice_of_process(pid) for pid in pids if pid is not None} == {min(19, own + 7)}
    finally:
        await decoder.close()


def test_the_pipeline_decides_auto_with_the_model_it_starts_with(tmp_path: Path) -> None:
    small = write_colour_model(tmp_path / "small.onnx")
    large = write_colour_model(tmp_path / "large.onnx", colour_spec(size=224))
    for path, pixels in ((small, 32 * 32), (large, 224 * 224)):
        engine = InferenceEngine.from_path(path)
        pipeline = Pipeline(
            ModelStore.serving(engine), PipelineConfig(decode_processes=None), Metrics()
        )
        chosen = decoder_processes(None, pixels)
        assert pipeline.config.decode_processes == chosen
        assert isinstance(pipeline._decoder, ProcessDecoder if chosen else ThreadDecoder)
    assert decoder_processes(None, 224 * 224) == 0
