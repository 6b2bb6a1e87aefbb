"""Writing output folders and files atomically: nothing half-written is ever left behind."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app_package.errors import InputError

logger = logging.getLogger(__name__)


def check_output_free(dest: Path) -> None:
    """Refuse an output folder that exists with content (before any work is done): an empty
    folder is fine (e.g. a CWL runner's output dir)."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"output folder {dest} already exists: choose a new path or remove it")


@contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder of `dest`; on success it is renamed to `dest`.

    On any exception the temporary folder is removed and `dest` is untouched.
    """
    dest = Path(dest)
    check_output_free(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    logger.debug("wrote %s", dest)


@contextmanager
def atomic_file(dest: Path) -> Iterator[Path]:
    """Yield a temporary sibling path of `dest`; once written, it is synced and renamed over
    `dest` (a reader sees the old file or the new one, never half of one).

    On any exception the temporary file is removed and `dest` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
