"""`eurosat-training`: train a EuroSAT classifier from a STAC catalog (async only).

A thin adapter over `app_package.training.train.train`: inputs map straight onto `TrainConfig`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app_package import __version__
from app_package.defaults import MODEL_NAME, SAMPLE_CATALOG, TRAINING_PROCESS
from app_package.eo.bands import S2_BANDS
from app_package.jobs.processor import JobProcessor, tracking_uri
from app_package.training.config import TrainConfig
from app_package.util.progress import ProgressCallback

logger = logging.getLogger(__name__)

BAND_NAMES = [b.name for b in S2_BANDS]  # the 13 bands, in their canonical order
_D = TrainConfig(stac="", output=Path())  # the defaults, defined once in TrainConfig


def _input(title: str, description: str, schema: dict[str, Any], required: bool = False) -> dict:
    return {
        "title": title,
        "description": description,
        "schema": schema,
        "minOccurs": 1 if required else 0,
        "maxOccurs": 1,
    }


PROCESS_METADATA: dict[str, Any] = {
    "version": __version__,
    "id": TRAINING_PROCESS,
    "title": {"en": "EuroSAT classifier training"},
    "description": {
        "en": "Trains a land-cover CNN on EuroSAT-MS chips listed in a STAC catalog, tracks the "
        "run in MLflow, registers the model and writes a STAC catalog of the run (model files, "
        "metrics). Progress is reported per epoch."
    },
    "jobControlOptions": ["async-execute"],
    "outputTransmission": ["value", "reference"],
    "keywords": ["EuroSAT", "Sentinel-2", "training", "MLflow", "STAC"],
    "links": [],
    "inputs": {
        "stac": _input(
            "Training data",
            "A static STAC catalog of EuroSAT-MS chips (path or URL of catalog.json). "
            "Default: the bundled sample of 40 real chips.",
            {"type": "string", "format": "uri-reference"},
        ),
        "bands": {
            **_input(
                "Bands",
                "Sentinel-2 bands the model uses, by name. Default: the 12 without B10 (the "
                "bands L1C and L2A products both have).",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": BAND_NAMES},
                    "minItems": 1,
                    "uniqueItems": True,
                },
            ),
        },
        "arch": _input(
            "Architecture",
            "Network architecture.",
            {"type": "string", "enum": ["smallcnn", "resnet18"], "default": "smallcnn"},
        ),
        "epochs": _input(
            "Epochs",
            "Maximum number of epochs (early stopping picks the count).",
            {"type": "integer", "minimum": 1, "maximum": 1000, "default": _D.epochs},
        ),
        "batch_size": _input(
            "Batch size",
            "Chips per training step.",
            {"type": "integer", "minimum": 1, "maximum": 4096, "default": 64},
        ),
        "lr": _input(
            "Learning rate",
            "Initial learning rate.",
            {"type": "number", "minimum": 1e-8, "maximum": 10, "default": 0.001},
        ),
        "optimizer": _input(
            "Optimizer",
            "Optimizer.",
            {"type": "string", "enum": ["adamw", "adam", "sgd"], "default": "adamw"},
        ),
        "weight_decay": _input(
            "Weight decay",
            "Weight decay.",
            {"type": "number", "minimum": 0, "maximum": 1, "default": 0.0001},
        ),
        "lr_schedule": _input(
            "LR schedule",
            "Learning-rate schedule.",
            {"type": "string", "enum": ["cosine", "step", "constant"], "default": "cosine"},
        ),
        "patience": _input(
            "Patience",
            "Epochs without validation improvement before stopping (0: never stop early).",
            {"type": "integer", "minimum": 0, "maximum": 1000, "default": 5},
        ),
        "samples_per_class": _input(
            "Samples per class",
            "Use at most this many chips per class (default: all).",
            {"type": "integer", "minimum": 1},
        ),
        "val_fraction": _input(
            "Validation fraction",
            "Share of chips held out for validation.",
            {"type": "number", "minimum": 0.01, "maximum": 0.9, "default": 0.2},
        ),
        "test_fraction": _input(
            "Test fraction",
            "Share of chips held out for the test metrics.",
            {"type": "number", "minimum": 0.01, "maximum": 0.9, "default": 0.2},
        ),
        "seed": _input(
            "Seed",
            "Random seed (splits, initialisation, shuffling).",
            {"type": "integer", "minimum": 0, "default": 0},
        ),
        "radiometric": _input(
            "Radiometric augmentation",
            "Strength of random radiometric shifts of training chips (brightness, per-band "
            "gains, haze and its removal, as between seasons and between L1C and L2A); 0 = off, "
            "1 spans what real products show.",
            {"type": "number", "minimum": 0, "maximum": 3, "default": _D.radiometric},
        ),
        "experiment": _input(
            "MLflow experiment",
            "Experiment the run is logged to.",
            {"type": "string", "minLength": 1, "maxLength": 200, "default": "eurosat"},
        ),
        "model_name": _input(
            "Registered model name",
            "Name the model is registered under.",
            {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
                "default": MODEL_NAME,
            },
        ),
    },
    "outputs": {
        "catalog": {
            "title": "Run catalog",
            "description": "STAC catalog of the training run: the model (MLM extension) with its "
            "weights, the MLflow run id and model URI, test metrics. Asset hrefs resolve over "
            "HTTP on this server.",
            "schema": {
                "type": "object",
                "contentMediaType": "application/json",
                "required": ["type", "id", "links"],
            },
        }
    },
    "example": {
        "inputs": {"epochs": 2, "samples_per_class": 4, "patience": 0, "seed": 0},
    },
}


class TrainingProcessor(JobProcessor):
    """Runs `app_package.training.train.train` for a job."""

    def __init__(self, processor_def: dict[str, Any]) -> None:
        super().__init__(processor_def, PROCESS_METADATA)
        self.tracking_uri = tracking_uri(processor_def)

    def run(self, inputs: dict[str, Any], output: Path, progress: ProgressCallback) -> Path:
        from app_package.training.train import train

        return train(self._config(inputs, output), progress).catalog

    def run_resumable(
        self, inputs: dict[str, Any], output: Path, progress: ProgressCallback, workdir: Path
    ) -> Path:
        """A checkpoint per epoch in `workdir`: a job queued again resumes from it."""
        from app_package.training.train import train

        return train(self._config(inputs, output), progress, checkpoints=workdir).catalog

    def _config(self, inputs: dict[str, Any], output: Path) -> TrainConfig:
        args = dict(inputs)
        if "bands" in args:
            args["bands"] = tuple(args["bands"])
        return TrainConfig(
            stac=str(args.pop("stac", SAMPLE_CATALOG)),
            output=output,
            tracking_uri=self.tracking_uri,
            **args,
        )
