"""Training in tests: catalogs written by code, per-test MLflow stores, quick configurations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from app_package.training.config import TrainConfig
from tests.support.datagen import write_eurosat_tree


def make_catalog(root: Path, n_per_class: int | dict[str, int] = 5, seed: int = 0) -> str:
    """A EuroSAT tree written by code, turned into a static STAC catalog; returns its path."""
    from app_package.data.eurosat_stac import eurosat_to_stac

    tree = write_eurosat_tree(root / "EuroSAT_MS", n_per_class, seed=seed)
    return str(eurosat_to_stac(tree, root / "stac"))


def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def assert_no_run_left_running(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            assert run.info.status != "RUNNING", f"run {run.info.run_id} left RUNNING"


def quick_config(stac: str, tmp_path: Path, **kw: object) -> TrainConfig:
    base = TrainConfig(
        stac=stac,
        output=tmp_path / "out",
        epochs=2,
        batch_size=16,
        val_fraction=0.2,
        test_fraction=0.2,
        tracking_uri=store(tmp_path),
        device="cpu",
    )
    return replace(base, **kw)  # type: ignore[arg-type]
