"""Scoring shards on a Ray cluster: actors that each hold one step (one ONNX Runtime session,
on a GPU when the cluster has them), fed one shard at a time.

Why actors: a session is built once per worker, not once per shard (building one costs far
more than scoring a shard's batches), and a worker that holds one GPU keeps it.

Failures, shard by shard:
- the shard itself fails (``ShardError`` inside the actor: a decode error): it goes back to
  the queue and is tried again alone, on whichever actor is free, up to ``max_attempts``;
- the actor dies (its worker process or its whole node killed): its shard goes back to the
  queue, the actor leaves the pool, and a replacement starts if the cluster has room for it.
  The other actors go on; nothing already scored is scored again. This uses one of the
  shard's attempts too: a shard that kills every worker it meets must end the job.
The job fails only if a shard fails every attempt, or no actor is left and none can start
within ``wait_for_workers_s``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_scoring.errors import JobError, ShardError
from video_scoring.progress import Progress
from video_scoring.shards import Shard
from video_scoring.steps import StepSpec, build_step
from video_scoring.worker import ShardResult, ShardScorer

log = logging.getLogger(__name__)


class ShardActor:
    """Runs in a Ray worker process (made remote by ``run_on_ray``)."""

    def __init__(self, spec: StepSpec, batch_size: int) -> None:
        self.scorer = ShardScorer(build_step(spec), batch_size, spec.threads)

    def describe(self) -> dict[str, Any]:
        return self.scorer.step.describe() | {"worker": self.scorer.worker}

    def score(self, shard: Shard) -> ShardResult:
        return self.scorer.score(shard)


@dataclass(frozen=True)
class RaySettings:
    address: str
    actors: int = 0  # 0: as many as the cluster has CPUs (GPUs, if it has any) for
    cpus_per_actor: float = 1.0
    max_attempts: int = 3
    wait_for_workers_s: float = 120.0
    # Code to ship with the job (py_modules), for a cluster whose image lacks this repository.
    ship_code: tuple[Path, ...] = ()


def run_on_ray(
    shards: list[Shard],
    spec: StepSpec,
    batch_size: int,
    progress: Progress,
    settings: RaySettings,
) -> tuple[list[ShardResult], dict[str, Any]]:
    import ray  # only a Ray job pays for importing Ray

    runtime_env = (
        {"py_modules": [str(p) for p in settings.ship_code]} if settings.ship_code else None
    )
    ray.init(
        address=settings.address,
        logging_level=logging.WARNING,
        log_to_driver=False,
        runtime_env=runtime_env,
    )
    try:
        return _Scheduler(ray, shards, spec, batch_size, progress, settings).run()
    finally:
        ray.shutdown()


class _Scheduler:
    def __init__(
        self,
        ray: Any,
        shards: list[Shard],
        spec: StepSpec,
        batch_size: int,
        progress: Progress,
        settings: RaySettings,
    ) -> None:
        self.ray = ray
        self.settings = settings
        self.progress = progress
        self.pending: deque[tuple[Shard, int]] = deque((s, 1) for s in shards)
        self.results: dict[tuple[int, int], ShardResult] = {}
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        options: dict[str, Any] = {"num_cpus": settings.cpus_per_actor, "max_restarts": 0}
        if gpus:
            options["num_gpus"] = 1
        wanted = settings.actors or (
            gpus or int(resources.get("CPU", 1) // settings.cpus_per_actor)
        )
        self.wanted = max(1, wanted)
        remote = ray.remote(ShardActor).options(**options)
        spec_ref = ray.put(spec)  # the model's bytes go to the object store once
        self._remote, self._spec_ref, self._batch_size = remote, spec_ref, batch_size
        self.starting: dict[Any, Any] = {}  # ready ref -> actor
        self.idle: list[Any] = []
        self.busy: dict[Any, tuple[Any, Shard, int]] = {}  # result ref -> (actor, shard, attempt)
        self.step_info: dict[str, Any] = {}
        self.lost = 0

    def run(self) -> tuple[list[ShardResult], dict[str, Any]]:
        for _ in range(self.wanted):
            self._start_actor()
        no_workers_since: float | None = None
        while self.pending or self.busy:
            self._dispatch()
            refs = list(self.starting) + list(self.busy)
            if not refs:
                if not self._room_for_actor():
                    no_workers_since = no_workers_since or time.monotonic()
                    if time.monotonic() - no_workers_since > self.settings.wait_for_workers_s:
                        left = ", ".join(s.name for s, _ in self.pending)
                        raise JobError(f"no Ray worker left to score {left}")
                    time.sleep(1.0)
                    continue
                self._start_actor()
                continue
            no_workers_since = None
            done, _ = self.ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in done:
                if ref in self.starting:
                    self._started(ref)
                else:
                    self._finished(ref)
            self.progress.workers = len(self.idle) + len(self.busy)
            self.progress.show()
        ordered = [self.results[k] for k in sorted(self.results)]
        return ordered, self.step_info

    def _start_actor(self) -> None:
        actor = self._remote.remote(self._spec_ref, self._batch_size)
        self.starting[actor.describe.remote()] = actor

    def _room_for_actor(self) -> bool:
        return bool(self.ray.available_resources().get("CPU", 0) >= self.settings.cpus_per_actor)

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            self.lost += 1
            self.progress.note(f"a worker failed to start: {type(e).__name__}")
            return
        self.step_info = {k: v for k, v in info.items() if k != "worker"}
        self.idle.append(actor)

    def _dispatch(self) -> None:
        while self.pending and self.idle:
            actor = self.idle.pop()
            shard, attempt = self.pending.popleft()
            self.busy[actor.score.remote(shard)] = (actor, shard, attempt)

    def _finished(self, ref: Any) -> None:
        actor, shard, attempt = self.busy.pop(ref)
        try:
            result: ShardResult = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:
            # The shard failed inside a healthy actor: the actor stays.
            self.idle.append(actor)
            self._again(shard, attempt, e.cause if isinstance(e.cause, ShardError) else e)
            return
        except self.ray.exceptions.RayError as e:
            # The actor is gone (its process or node died): the shard goes back alone.
            self.lost += 1
            self._again(shard, attempt, e)
            if self._room_for_actor():
                self._start_actor()
            return
        self.idle.append(actor)
        self.results[(shard.video, shard.number)] = result
        self.progress.shard_done(shard.frames)

    def _again(self, shard: Shard, attempt: int, why: BaseException) -> None:
        next_attempt = attempt + 1
        if next_attempt > self.settings.max_attempts:
            raise JobError(f"{shard.name} failed {attempt} times; last: {why}")
        reason = str(why).splitlines()[0][:200] if str(why) else type(why).__name__
        self.progress.retry(shard.name, reason)
        self.pending.appendleft((shard, next_attempt))
