"""Everything MLflow: runs, params, per-epoch metrics, test metrics, dataset lineage, the model
and its registry entry, the `champion` alias, and resolving the best model to a loadable URI.

The training loop never imports mlflow; it hands `Run.log_epoch` in as its epoch callback.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app_package.defaults import CHAMPION_ALIAS, MODEL_NAME
from app_package.errors import InputError, NotFoundError, TrackingError
from app_package.training.plots import confusion_matrix_png

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from torch import nn

    from app_package.model.spec import ModelSpec
    from app_package.training.loop import EpochStats

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MODEL_ARTIFACT = "model"
SPEC_METADATA_KEY = "app_package_spec"
SELECTION_METRIC = "test_accuracy"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The given URI, else $MLFLOW_TRACKING_URI, else a local sqlite store (`mlflow.db`)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (TrackingError) when an MLflow server does not answer or a store cannot exist."""
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            r = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
        except requests.RequestException as e:
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({type(e).__name__}): start it "
                "(`mlflow server`) or set another tracking URI",
                field="tracking_uri",
            ) from e
        if r.status_code != 200:
            raise TrackingError(
                f"MLflow tracking server {uri} answered HTTP {r.status_code} on /health: "
                "check the URL (it should be the server root)"
            )
    elif uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.parent.is_dir():
            raise TrackingError(
                f"MLflow store {uri}: folder {path.parent} does not exist: create it or set "
                "another tracking URI",
                field="tracking_uri",
            )
    elif "://" not in uri and not Path(uri).parent.is_dir():
        raise TrackingError(f"MLflow store {uri}: folder {Path(uri).parent} does not exist")


def _client(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """mlflow's fluent API (log_model) reads a global URI: set it, then restore the old one."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils

    # set_*_uri also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI to os.environ, which child
    # processes (and later MlflowClient(tracking_uri=…) calls, for the registry) would inherit:
    # restore the globals *and* the environment exactly as they were.
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    before_t = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    before_r = registry_utils._registry_uri  # no public getter that tells "unset" from default
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before_t)  # type: ignore[arg-type]  # None clears it
        mlflow.set_registry_uri(before_r)  # type: ignore[arg-type]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    model_uri: str  # models:/<name>/<version>
    logged_model_uri: str  # the run's logged model (models:/<model_id>)


class Tracker:
    """One tracking store and experiment; checks both before any training starts."""

    def __init__(self, tracking_uri: str | None, experiment: str) -> None:
        from mlflow.exceptions import MlflowException

        self.uri = resolve_tracking_uri(tracking_uri)
        check_reachable(self.uri)
        self.client = _client(self.uri)
        self.experiment_name = experiment
        try:
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                self.experiment_id = self.client.create_experiment(experiment)
            elif exp.lifecycle_stage != "active":
                raise TrackingError(
                    f"MLflow experiment {experiment!r} is deleted: restore it or choose another "
                    "experiment",
                    field="experiment",
                )
            else:
                self.experiment_id = exp.experiment_id
        except MlflowException as e:
            raise TrackingError(
                f"MLflow store {self.uri} refused experiment {experiment!r}: {e}"
            ) from e

    def can_continue(self, run_id: str) -> bool:
        """Whether run `run_id` exists, is not deleted and belongs to this experiment (a run an
        interrupted training started, to be continued)."""
        from mlflow.exceptions import MlflowException

        try:
            info = self.client.get_run(run_id).info
        except MlflowException:
            return False
        return info.experiment_id == self.experiment_id and info.lifecycle_stage == "active"

    @contextmanager
    def start_run(self, run_name: str | None = None, run_id: str | None = None) -> Iterator[Run]:
        """An MLflow run that ends FINISHED on success and FAILED on any exception; with
        `run_id`, that existing run continued (an interrupted training resumed)."""
        import mlflow

        with global_tracking_uri(self.uri):
            if run_id is not None:
                active = mlflow.start_run(run_id=run_id)
            else:
                active = mlflow.start_run(experiment_id=self.experiment_id, run_name=run_name)
            run = Run(self, active.info.run_id)
            try:
                yield run
            except BaseException:
                mlflow.end_run(status="FAILED")
                logger.warning("MLflow run %s ended FAILED", run.run_id)
                raise
            mlflow.end_run(status="FINISHED")


class Run:
    """The logging calls a training run makes; `overhead_s` sums the time they took."""

    def __init__(self, tracker: Tracker, run_id: str) -> None:
        self.tracker = tracker
        self.client = tracker.client
        self.run_id = run_id
        self.overhead_s = 0.0

    @property
    def run_url(self) -> str:
        """Web UI link for a server store, else the `runs:/` URI."""
        uri = self.tracker.uri
        if uri.startswith(("http://", "https://")):
            return (
                f"{uri.rstrip('/')}/#/experiments/{self.tracker.experiment_id}/runs/{self.run_id}"
            )
        return f"runs:/{self.run_id}"

    def log_params(self, params: dict[str, Any]) -> None:
        """Logged once per run (MLflow refuses changing a param)."""
        import mlflow

        t0 = time.perf_counter()
        mlflow.log_params({k: "None" if v is None else v for k, v in params.items()})
        self.overhead_s += time.perf_counter() - t0

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def log_epoch(self, stats: EpochStats) -> None:
        """The epoch callback: one batched call per epoch, step = epoch number."""
        import mlflow

        t0 = time.perf_counter()
        mlflow.log_metrics(stats.metrics(), step=stats.epoch)
        self.overhead_s += time.perf_counter() - t0

    def log_missing_epochs(self, history: list[EpochStats]) -> int:
        """Log the epochs of `history` the run has no metrics for yet (a resumed training: an
        epoch checkpointed just before the interruption); how many. None is logged twice."""
        t0 = time.perf_counter()
        logged = {m.step for m in self.client.get_metric_history(self.run_id, "train_loss")}
        self.overhead_s += time.perf_counter() - t0
        missing = [s for s in history if s.epoch not in logged]
        for stats in missing:
            self.log_epoch(stats)
        return len(missing)

    def log_dataset(
        self,
        *,
        source: str,
        digest: str,
        counts: dict[str, int],
        split_counts: dict[str, int],
        bands: tuple[str, ...],
    ) -> None:
        """Dataset lineage: the STAC reference, a content digest and sample counts."""
        import mlflow
        from mlflow.data.http_dataset_source import HTTPDatasetSource
        from mlflow.data.meta_dataset import MetaDataset

        t0 = time.perf_counter()
        if source.startswith(("http://", "https://")):
            src: Any = HTTPDatasetSource(source)
        else:
            import warnings

            from mlflow.data.dataset_source_registry import resolve_dataset_source

            with warnings.catch_warnings():  # mlflow registers its local source type twice
                warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
                src = resolve_dataset_source(str(Path(source).resolve()))
        dataset = MetaDataset(  # type: ignore[abstract]  # MetaDataset.profile is a property
            source=src, name=f"eurosat-stac:{Path(source).name}", digest=digest[:32]
        )
        tags = {
            "stac": source,
            "digest": digest,
            "bands": ",".join(bands),
            "class_counts": json.dumps(counts),
            "split_counts": json.dumps(split_counts),
        }
        mlflow.log_input(dataset, context="training", tags=tags)
        mlflow.log_params({"dataset_digest": digest, "dataset_chips": sum(counts.values())})
        self.overhead_s += time.perf_counter() - t0

    def log_test_metrics(self, report: dict[str, Any]) -> None:
        """Test accuracy, macro F1, per-class P/R/F1; the report and matrix as JSON and PNG."""
        import mlflow

        t0 = time.perf_counter()
        metrics = {"test_accuracy": report["accuracy"], "test_macro_f1": report["macro_f1"]}
        for cls, m in report["per_class"].items():
            for k in ("precision", "recall", "f1"):
                metrics[f"test_{k}_{cls}"] = m[k]
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report, "metrics/test_metrics.json")
        mlflow.log_dict(
            {"classes": report["classes"], "matrix": report["confusion_matrix"]},
            "metrics/confusion_matrix.json",
        )
        with tempfile.TemporaryDirectory() as d:
            png = Path(d) / "confusion_matrix.png"
            png.write_bytes(confusion_matrix_png(report["confusion_matrix"], report["classes"]))
            mlflow.log_artifact(str(png), "metrics")
        self.overhead_s += time.perf_counter() - t0

    def log_model(
        self,
        model: nn.Module,
        spec: ModelSpec,
        example_chips: np.ndarray,
        model_name: str,
        onnx: Path | None = None,
    ) -> RegisteredModel:
        """Log the model with signature, input example and spec metadata; register a version.

        `onnx`: the network's `model.onnx`, logged inside the MLflow model as
        `extra_files/model.onnx`, so every `models:/` or `runs:/` URI of it finds the file
        (`app_package.model.source.ModelRef.onnx_path`)."""
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        from app_package.model.networks import normalise

        t0 = time.perf_counter()
        if len(example_chips) < 2:  # torch.export would specialise the batch size to 1
            example_chips = np.concatenate([example_chips, example_chips])[:2]
        x = normalise(example_chips[:2], spec)
        with torch.inference_mode():
            y = model.eval()(x).float().numpy()
        example = x.numpy()
        info = mlflow.pytorch.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=infer_signature(example, y),
            input_example=example,
            metadata={SPEC_METADATA_KEY: spec.to_dict()},
            registered_model_name=model_name,
            extra_files=[str(onnx)] if onnx is not None else None,
        )
        version = str(info.registered_model_version)
        self.client.set_model_version_tag(model_name, version, "run_id", self.run_id)
        self.overhead_s += time.perf_counter() - t0
        return RegisteredModel(
            model_name, version, f"models:/{model_name}/{version}", info.model_uri
        )

    def promote_if_better(self, registered: RegisteredModel, test_accuracy: float) -> bool:
        """Move `champion` to this version only if it beats the champion's test accuracy."""
        t0 = time.perf_counter()
        current = champion_accuracy(self.client, registered.name)
        better = current is None or test_accuracy > current
        if better:
            self.client.set_registered_model_alias(
                registered.name, CHAMPION_ALIAS, registered.version
            )
            logger.info(
                "%s v%s is the new champion (test accuracy %.4f > %s)",
                registered.name,
                registered.version,
                test_accuracy,
                current,
            )
        self.set_tag("champion", str(better).lower())
        self.overhead_s += time.perf_counter() - t0
        return better


def champion_accuracy(client: MlflowClient, model_name: str) -> float | None:
    """Test accuracy of the run behind `<name>@champion`, or None when there is no champion."""
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    if not mv.run_id:
        return None
    value = client.get_run(mv.run_id).data.metrics.get(SELECTION_METRIC)
    return None if value is None else float(value)


def best_model_uri(
    *,
    tracking_uri: str | None = None,
    model_name: str | None = MODEL_NAME,
    experiment: str | None = None,
    metric: str = SELECTION_METRIC,
    ascending: bool | None = None,
) -> str:
    """A loadable model URI: `models:/<name>@champion`, or — given an experiment — the model of
    its finished run with the best `metric` (lowest for losses, highest otherwise)."""
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = _client(uri)
    if experiment is None:
        if not model_name:
            raise InputError("name a registered model or an experiment", field="model_name")
        try:
            mv = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
        except MlflowException as e:
            raise NotFoundError(
                f"registered model {model_name!r} has no {CHAMPION_ALIAS!r} version in {uri}: "
                "train one first, or name an experiment to pick its best run",
                field="model_name",
            ) from e
        logger.info("champion of %s is version %s", model_name, mv.version)
        return f"models:/{model_name}@{CHAMPION_ALIAS}"
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise NotFoundError(f"MLflow experiment {experiment!r} not found in {uri}")
    if ascending is None:
        ascending = "loss" in metric
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and metrics.`{metric}` >= -1e300",
        order_by=[f"metrics.`{metric}` {'ASC' if ascending else 'DESC'}"],
        max_results=1,
    )
    if not runs:
        raise NotFoundError(
            f"no finished run with metric {metric!r} in experiment {experiment!r} ({uri})"
        )
    run_id = runs[0].info.run_id
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if versions:
        mv = max(versions, key=lambda v: int(v.version))
        return f"models:/{mv.name}/{mv.version}"
    models = client.search_logged_models(
        experiment_ids=[exp.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    if not models:
        raise NotFoundError(f"run {run_id} (best by {metric}) has no logged model")
    return f"models:/{models[0].model_id}"
