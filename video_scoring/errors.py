"""Errors of batch video scoring.

VideoScoringError
├── VideoError      an input cannot be read as a video (named, the job refuses to start)
├── ShardError      one shard failed (retried alone, up to the attempt limit)
└── JobError        the job cannot complete: a shard failed on every attempt, or the
                    output does not account for every frame
"""

from __future__ import annotations


class VideoScoringError(Exception):
    pass


class VideoError(VideoScoringError):
    pass


class ShardError(VideoScoringError):
    pass


class JobError(VideoScoringError):
    pass
