"""The one backoff of the package (exponential, capped, with jitter) and retrying to a deadline."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay before the `failures`-th retry: base · 2^(failures − 1), capped, ±`jitter`."""

    base_s: float = 0.5
    max_s: float = 60.0
    jitter: float = 0.1

    def delay(self, failures: int) -> float:
        d = min(self.max_s, self.base_s * 2 ** max(0, failures - 1))
        return d * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)


def retry_until[T](
    op: Callable[[], T],
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    within_s: float,
    pause_s: float = 0.5,
) -> T:
    """`op()`, tried again every `pause_s` while it raises `retry_on`, for at most `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return op()
        except retry_on:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause_s)
