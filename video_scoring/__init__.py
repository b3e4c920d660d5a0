"""Whole-video batch scoring: every frame of every input scored, none dropped, locally or
sharded across a Ray cluster (``python -m cloud_tools score-video``).

    JobSettings, run_job, JobReport      a whole job (job)
    StepSpec, FrameStep                  the per-frame step, pluggable (steps)
    RaySettings                          where and how wide on Ray (ray_runner)
    probe_video, plan_shards             frames and shards (probe, shards)
"""

from video_scoring.errors import JobError, ShardError, VideoError, VideoScoringError
from video_scoring.job import JobReport, JobSettings, run_job
from video_scoring.probe import VideoIndex, probe_video
from video_scoring.ray_runner import RaySettings
from video_scoring.shards import Shard, plan_shards
from video_scoring.steps import FrameStep, StepSpec

__all__ = [
    "FrameStep",
    "JobError",
    "JobReport",
    "JobSettings",
    "RaySettings",
    "Shard",
    "ShardError",
    "StepSpec",
    "VideoError",
    "VideoIndex",
    "VideoScoringError",
    "plan_shards",
    "probe_video",
    "run_job",
]
