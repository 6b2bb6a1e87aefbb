"""Shared fixtures: synthetic real-format data, the real data in ../shared when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.datagen import write_eurosat_tree

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
SHARED_SCHEMAS = SHARED / "schemas"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real EuroSAT chips, a real L1C subset); skips where it is absent."""
    if not (SHARED_DATA / "eurosat-ms-subset").is_dir():
        pytest.skip(
            f"real data not found at {SHARED_DATA} (only the project's CI machines have it)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def eurosat_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic EuroSAT folder: 10 classes × 6 chips, official layout, seeded."""
    return write_eurosat_tree(tmp_path_factory.mktemp("eurosat") / "EuroSAT_MS", 6, seed=0)
