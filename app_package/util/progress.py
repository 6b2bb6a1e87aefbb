"""Progress reporting shared by the CLI (a bar) and the server (job status)."""

from typing import Protocol


class ProgressCallback(Protocol):
    """Called with a percentage (0–100) and a short human message."""

    def __call__(self, percent: float, message: str) -> None: ...


def no_progress(percent: float, message: str) -> None:
    """A ProgressCallback that ignores everything."""


def scaled(callback: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """A callback mapping 0–100 onto [start, end] of `callback` (for sub-steps of a job)."""

    def inner(percent: float, message: str) -> None:
        callback(start + (end - start) * max(0.0, min(100.0, percent)) / 100.0, message)

    return inner
