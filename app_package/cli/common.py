"""What every command shares: the handler type and the progress bar."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app_package.util.progress import ProgressCallback

Handler = Callable[[argparse.Namespace], int]


@contextmanager
def progress_bar(desc: str) -> Iterator[ProgressCallback]:
    """A tqdm bar (0–100 %) on stderr, exposed as a ProgressCallback."""
    from tqdm import tqdm

    bar = tqdm(
        total=100, desc=desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}] {postfix}"
    )

    def update(percent: float, message: str) -> None:
        bar.n = max(0.0, min(100.0, percent))
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
