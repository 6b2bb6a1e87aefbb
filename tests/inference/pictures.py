"""Looking at thumbnails in tests: pixels, colours, the quicklook panel."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def pixels(png: bytes | Path) -> np.ndarray:
    """The PNG's RGB pixels, [H, W, 3] uint8 (checking it is a PNG of at most 1024 px)."""
    from PIL import Image

    data = png.read_bytes() if isinstance(png, Path) else png
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and max(im.size) <= 1024, im.size
        return np.asarray(im.convert("RGB"))


def count(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    """Pixels of exactly that colour."""
    return int((img == np.asarray(rgb, dtype=np.uint8)).all(axis=-1).sum())


def left_panel(img: np.ndarray) -> np.ndarray:
    """The middle of the left panel (the quicklook when there are two panels)."""
    h, w, _ = img.shape
    return img[int(0.35 * h) : int(0.65 * h), int(0.06 * w) : int(0.44 * w)]


def not_blank(panel: np.ndarray) -> bool:
    """Mostly not white, and not one flat colour."""
    white = (panel > 245).all(axis=-1).mean()
    return bool(white < 0.2 and panel.reshape(-1, 3).std(axis=0).max() > 4)
