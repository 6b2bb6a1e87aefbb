"""MLflow tracking: FAILED runs, per-epoch metrics, the champion rule, best-model resolution,
and the same training against a real `mlflow server` on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from app_package.errors import NotFoundError, TrackingError
from app_package.model.networks import build_model
from app_package.model.source import load_model
from app_package.model.spec import ModelSpec
from app_package.training.loop import EpochStats
from app_package.training.plots import confusion_matrix_png
from app_package.training.tracking import (
    RegisteredModel,
    Tracker,
    best_model_uri,
    champion_accuracy,
    check_reachable,
)
from tests.support.procs import stop
from tests.support.training import assert_no_run_left_running, make_catalog, quick_config, store


def _stats(epoch: int, acc: float) -> EpochStats:
    return EpochStats(epoch, 1.0 / epoch, acc, 1.0, acc, 1e-3, 1.0, 100.0)


def test_run_that_raises_ends_failed(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    tracker = Tracker(store(tmp_path), "t")
    with pytest.raises(RuntimeError, match="boom"), tracker.start_run() as run:
        run.log_epoch(_stats(1, 0.5))
        raise RuntimeError("boom")
    status = MlflowClient(tracking_uri=store(tmp_path)).get_run(run.run_id).info.status
    assert status == "FAILED"
    assert_no_run_left_running(store(tmp_path))


def test_epoch_metrics_are_logged_with_the_epoch_as_step(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    tracker = Tracker(store(tmp_path), "t")
    with tracker.start_run() as run:
        run.log_params({"lr": 0.1, "bands": "B02,B03"})
        for e, acc in enumerate((0.2, 0.5, 0.7), 1):
            run.log_epoch(_stats(e, acc))
    client = MlflowClient(tracking_uri=store(tmp_path))
    hist = client.get_metric_history(run.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in hist] == [(1, 0.2), (2, 0.5), (3, 0.7)]
    assert client.get_run(run.run_id).data.params == {"lr": "0.1", "bands": "B02,B03"}
    assert run.overhead_s > 0


def _register(tracker: Tracker, name: str, test_acc: float) -> tuple[RegisteredModel, bool]:
    """A finished run with a real (tiny) logged + registered model and its test accuracy."""
    spec = ModelSpec.for_bands("smallcnn", ("B02", "B03"))
    torch.manual_seed(0)
    model = build_model(spec).eval()
    chips = np.full((1, 2, 64, 64), 1000, dtype=np.uint16)
    with tracker.start_run() as run:
        run.log_test_metrics(
            {
                "accuracy": test_acc,
                "macro_f1": test_acc,
                "per_class": {"Forest": {"precision": 1.0, "recall": 1.0, "f1": 1.0}},
                "classes": ["Forest"],
                "confusion_matrix": [[1]],
            }
        )
        reg = run.log_model(model, spec, chips, name)
        promoted = run.promote_if_better(reg, test_acc)
    return reg, promoted


def test_champion_moves_only_to_a_better_version(tmp_path: Path) -> None:
    uri = store(tmp_path)
    tracker = Tracker(uri, "t")
    r1, p1 = _register(tracker, "m", 0.70)
    r2, p2 = _register(tracker, "m", 0.60)  # worse: stays on v1
    r3, p3 = _register(tracker, "m", 0.80)  # better: moves to v3
    assert (r1.version, r2.version, r3.version) == ("1", "2", "3")
    assert (p1, p2, p3) == (True, False, True)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("m", "champion").version) == "3"
    assert champion_accuracy(client, "m") == pytest.approx(0.80)
    # best-model: the champion alias, or the best run of the experiment by a metric
    assert best_model_uri(tracking_uri=uri, model_name="m") == "models:/m@champion"
    assert best_model_uri(tracking_uri=uri, experiment="t") == "models:/m/3"
    assert best_model_uri(tracking_uri=uri, experiment="t", ascending=True) == "models:/m/2"
    model, spec = load_model("models:/m@champion", tracking_uri=uri)
    assert spec.bands == ("B02", "B03")
    assert model(torch.zeros(2, 2, 64, 64)).shape == (2, 10)
    assert_no_run_left_running(uri)


def test_best_model_errors_name_the_missing_thing(tmp_path: Path) -> None:
    uri = store(tmp_path)
    Tracker(uri, "empty")
    with pytest.raises(NotFoundError, match="no 'champion'"):
        best_model_uri(tracking_uri=uri, model_name="nobody")
    with pytest.raises(NotFoundError, match="experiment 'nope'"):
        best_model_uri(tracking_uri=uri, experiment="nope")
    with pytest.raises(NotFoundError, match="no finished run"):
        best_model_uri(tracking_uri=uri, experiment="empty")


def test_unreachable_stores_are_reported_up_front(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TrackingError, match="unreachable"):
        check_reachable(f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(TrackingError, match="does not exist"):
        check_reachable(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}")


def test_confusion_matrix_png_is_a_png() -> None:
    png = confusion_matrix_png([[3, 1], [0, 4]], ["Forest", "River"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


# ------------------------------------------------------------------ a real mlflow server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_training_against_a_real_mlflow_server(tmp_path: Path) -> None:
    from app_package.cli import main

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    server = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while True:
            try:
                check_reachable(url, timeout_s=1)
                break
            except TrackingError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(1)
        stac = make_catalog(tmp_path / "data", 4)
        cfg = quick_config(stac, tmp_path, tracking_uri=url, epochs=1)
        from app_package.training.train import train

        result = train(cfg)
        assert result.is_champion and result.model_uri == "models:/eurosat-classifier/1"
        item = json.loads(next(result.catalog.parent.glob("*/*-v1.json")).read_text())
        via = next(link for link in item["links"] if link["rel"] == "via")
        assert via["href"].startswith(url) and result.run_id in via["href"]
        with pytest.raises(SystemExit) as e:
            main(["best-model", "--tracking-uri", url])
        assert e.value.code == 0
        _, spec = load_model("models:/eurosat-classifier@champion", tracking_uri=url)
        assert spec.bands == cfg.resolved_bands() and len(spec.bands) == 12
        assert_no_run_left_running(url)
    finally:
        stop(server, timeout=30)
