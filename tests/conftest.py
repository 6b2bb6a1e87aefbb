"""Shared fixtures: synthetic real-format data, the real data in ../shared when present."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app_package.stac.validation import BUNDLED_SCHEMAS
from tests.support.datagen import write_eurosat_tree
from tests.support.pgserve import PostgresMissing, PostgresServer

if TYPE_CHECKING:
    from tests.support.slurm import SlurmCluster

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
SCHEMAS = BUNDLED_SCHEMAS  # the extension schemas the package ships: validation works offline


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="rewrite the golden files (tests/**/golden/) from the current output, then review "
        "the diff",
    )


@pytest.fixture
def regen_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files instead of comparing with them."""
    return bool(request.config.getoption("--regen-golden"))


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


# ---------------------------------------------------------------- Sentinel-2 products
S2_TEST_SHAPE = (300, 420)  # rows, cols at 10 m: 5 × 7 chips of 64, partial at right/bottom


@pytest.fixture(scope="session")
def s2_bands10() -> dict:
    """Synthetic 10 m DNs of all 13 bands (with a nodata square at the top-left)."""
    from tests.support.datagen import s2_test_bands

    h, w = S2_TEST_SHAPE
    return s2_test_bands(w, h, seed=3, nodata_corner=20)


@pytest.fixture(scope="session")
def s2_jp2(tmp_path_factory: pytest.TempPathFactory, s2_bands10: dict) -> dict:
    """The synthetic bands as L1C-like JP2 files at 10/20/60 m: {band: path}."""
    from tests.support.datagen import write_jp2_bands

    return write_jp2_bands(tmp_path_factory.mktemp("s2jp2") / "IMG_DATA", s2_bands10)


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on loopback for the session (tests/support/pgserve.py)."""
    try:
        server = PostgresServer()
    except PostgresMissing as e:
        pytest.fail(str(e))  # a production test must not pass by skipping
    server.start()
    yield server
    server.destroy()


# ---------------------------------------------------------------- Slurm
@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster on loopback for the session (tests/support/slurm.py). Without
    Slurm installed it skips, saying how to get it; in CI ($CI set) it fails instead."""
    from tests.support.slurm import SlurmCluster, SlurmMissing

    try:
        cluster = SlurmCluster()
    except SlurmMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e} (CI must run the Slurm tests)")
        pytest.skip(str(e))
    cluster.start()
    yield cluster
    cluster.stop()


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _isolated_mlflow_state() -> Iterator[None]:
    """No test leaks an MLflow URI to the next one.

    `mlflow.set_tracking_uri`/`set_registry_uri` also write MLFLOW_* environment variables, which
    child processes (servers, CWL runners) and later clients would inherit. Each test starts from
    the environment it found, and fails if it leaves a run active.
    """
    saved = {k: os.environ.get(k) for k in _MLFLOW_ENV}
    yield
    import sys

    if "mlflow" in sys.modules:
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        leaked = mlflow.active_run()
        tracking_utils._tracking_uri = None
        registry_utils._registry_uri = None
        assert leaked is None, f"test left MLflow run {leaked.info.run_id} active"
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
